"""Tenuo authorization for Temporal, with holder keys from ``tenuo_keys``.

Add one plugin to the client; every activity a workflow schedules then
carries a PoP signed with the holder key from the configured resolver, and
every activity worker verifies it with ``tenuo_core`` before the activity
runs. Activity definitions stay unchanged.

Example:
    >>> from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin  # doctest: +SKIP
    >>> plugin = TenuoTemporalPlugin(TenuoPluginConfig(
    ...     key_resolver=EnvKeyResolver(), trusted_roots=[issuer_public_key]))
    >>> client = await Client.connect("localhost:7233", plugins=[plugin])
    >>> await execute_workflow_authorized(
    ...     client=client, workflow_run_fn=MyWorkflow.run, workflow_id="w1",
    ...     warrant=warrant, key_id="agent1", args=["/data/a.txt"], task_queue="q")
"""

from __future__ import annotations

import importlib
from typing import Any

import tenuo_keys
from tenuo_keys import (
    BackendUnavailable,
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    KeyResolver,
    StaticKeyResolver,
    resolver_from_env,
    resolver_from_url,
)


def _require_temporalio() -> None:
    """Fail with the install line, as tenuo_keys' backends do, when temporalio is absent."""
    try:
        importlib.import_module("temporalio")
    except ImportError:
        raise tenuo_keys.MissingExtraError(
            "temporal", "temporal", "temporalio", subject="tenuo_temporal") from None


_require_temporalio()

from ._async_completion import tenuo_complete_async_activity
from ._audit import AuditCallback, AuditEvent
from ._client import execute_workflow_authorized, start_workflow_authorized
from ._config import TenuoPluginConfig, TrustedRootsProvider
from ._env_config import TenuoEnvWarning
from ._interceptors import TenuoClientInterceptor, TenuoWorkerInterceptor
from ._nexus import nexus_tool_name, tenuo_nexus_headers, verify_nexus_operation
from ._plugin import TenuoTemporalPlugin
from ._redis_store import RedisReplayStore
from ._replay import InMemoryReplayStore, ReplayStore
from ._sandbox import PASSTHROUGH_MODULES, workflow_runner
from ._schedules import create_scheduled_workflow_with_warrant
from .errors import (
    ApprovalRequired,
    ChainValidationError,
    ClearanceInsufficient,
    HeaderError,
    InsufficientApprovals,
    InvalidApproval,
    PopReplayed,
    PopVerificationError,
    TemporalConstraintViolation,
    TenuoTemporalError,
    ToolNotAuthorized,
    WarrantExpired,
    WarrantMissing,
)
from .workflow import (
    AuthorizedWorkflow,
    current_key_id,
    current_warrant,
    set_activity_approvals,
    tenuo_continue_as_new,
    tenuo_execute_activity,
    tenuo_execute_child_workflow,
    tenuo_execute_nexus_operation,
    tenuo_start_nexus_operation,
    workflow_grant,
    workflow_issue_execution,
)

__all__ = [
    "PASSTHROUGH_MODULES",
    "ApprovalRequired",
    "AuditCallback",
    "AuditEvent",
    "AuthorizedWorkflow",
    "BackendUnavailable",
    "ChainValidationError",
    "ClearanceInsufficient",
    "CompositeKeyResolver",
    "EnvKeyResolver",
    "HeaderError",
    "InMemoryReplayStore",
    "InsufficientApprovals",
    "InvalidApproval",
    "KeyAccessDenied",
    "KeyFormatError",
    "KeyNotFound",
    "KeyNotLoaded",
    "KeyResolutionError",
    "KeyResolver",
    "PopReplayed",
    "PopVerificationError",
    "RedisReplayStore",
    "ReplayStore",
    "StaticKeyResolver",
    "TemporalConstraintViolation",
    "TenuoClientInterceptor",
    "TenuoEnvWarning",
    "TenuoPluginConfig",
    "TenuoTemporalError",
    "TenuoTemporalPlugin",
    "TenuoWorkerInterceptor",
    "ToolNotAuthorized",
    "TrustedRootsProvider",
    "WarrantExpired",
    "WarrantMissing",
    "create_scheduled_workflow_with_warrant",
    "current_key_id",
    "current_warrant",
    "execute_workflow_authorized",
    "nexus_tool_name",
    "resolver_from_env",
    "resolver_from_url",
    "set_activity_approvals",
    "start_workflow_authorized",
    "tenuo_complete_async_activity",
    "tenuo_continue_as_new",
    "tenuo_execute_activity",
    "tenuo_execute_child_workflow",
    "tenuo_execute_nexus_operation",
    "tenuo_nexus_headers",
    "tenuo_start_nexus_operation",
    "verify_nexus_operation",
    "workflow_grant",
    "workflow_issue_execution",
    "workflow_runner",
]


def __getattr__(name: str) -> Any:
    # The cloud resolvers load lazily from tenuo_keys (they need extras).
    if name in ("VaultKeyResolver", "AWSSecretsManagerKeyResolver", "GCPSecretManagerKeyResolver"):
        return getattr(tenuo_keys, name)
    raise AttributeError(f"module 'tenuo_temporal' has no attribute {name!r}")
