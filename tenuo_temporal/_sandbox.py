"""The workflow sandbox and Tenuo: which modules pass through it.

Temporal's sandbox re-imports every module a workflow uses, per run. The
plugin's modules hold process state the interceptors and the workflow
helpers share (run states, decoded warrants), and ``tenuo_core`` is a native
extension that must be imported once, so they pass through. The plugin sets
this up for you; hand-wired workers use :func:`workflow_runner`.
"""

from __future__ import annotations

import dataclasses

from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

__all__ = ["PASSTHROUGH_MODULES", "workflow_runner"]

PASSTHROUGH_MODULES = ("tenuo_core", "tenuo", "tenuo_keys", "tenuo_temporal", "cachetools")
"""Modules the sandbox must pass through for Tenuo."""


def workflow_runner(runner: WorkflowRunner | None = None) -> WorkflowRunner:
    """``runner`` (default: a new ``SandboxedWorkflowRunner``) with Tenuo's modules passed through.

    Use it as ``Worker(..., workflow_runner=workflow_runner())`` when you wire
    :class:`~tenuo_temporal.TenuoWorkerInterceptor` by hand; a runner that is
    not sandboxed is returned as it is.

    Args:
        runner: The runner to extend (its other restrictions are kept).
    """
    runner = runner or SandboxedWorkflowRunner()
    if isinstance(runner, SandboxedWorkflowRunner):
        return dataclasses.replace(
            runner,
            restrictions=runner.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES))
    return runner
