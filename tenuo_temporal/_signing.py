"""The signed view of one activity call: the one computation every signer uses.

The outbound interceptor (which signs in memory inside the workflow) and
remote presigning (which asks the plugin's local activity to sign) both call
:func:`signed_view`, so a PoP signed either way covers the same names and the
same values, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import temporalio.workflow

from ._args import add_workflow_scope, canonical_args, check_reserved, names_for, positional
from ._headers import WarrantContext
from .errors import TenuoTemporalError, denial, unsignable

__all__ = ["WorkflowIdentity", "running_workflow", "signed_view"]

WorkflowIdentity = Callable[[], tuple[str | None, str | None]]
"""Returns the running workflow's ``(namespace, workflow_id)``; asked only when needed."""


def running_workflow() -> tuple[str | None, str | None]:
    """The namespace and id of the workflow this code runs in (``workflow.info()``)."""
    info = temporalio.workflow.info()
    return info.namespace, info.workflow_id


def signed_view(fn: Callable[..., Any] | None, args: Sequence[Any], tool: str,
                context: WarrantContext, identity: WorkflowIdentity = running_workflow,
                ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The argument names and the dict a PoP for this call signs.

    The names are ``fn``'s positional parameters (``arg0``, ``arg1``, ... when
    ``fn`` is unknown or takes ``*args``); each value is reduced with
    :func:`~tenuo_temporal._args.canonical`. When the warrant's capability for
    ``tool`` is workflow-scoped, the running workflow's namespace and id are
    added under the reserved names (which no argument may use).

    Args:
        fn: The activity function, or None when this worker does not know it.
        args: The positional arguments, as the workflow passes them.
        tool: The tool the activity is checked as.
        context: The run's warrant context.
        identity: Gives the running workflow's namespace and id; called only
            for a workflow-scoped capability.

    Returns:
        The names (listed in ``x-tenuo-arg-keys``) and the signed dict.

    Raises:
        ApplicationError: The non-retryable denial: an argument without a
            canonical form, a reserved argument name, a capability that scopes
            only half the workflow identity, or no complete workflow identity.
    """
    count = len(args)
    names = names_for(fn, count) or positional(count)
    try:
        signed = canonical_args(names, args)
        check_reserved(signed)
        if context.workflow_scoped(tool):
            namespace, workflow_id = identity()
            signed = add_workflow_scope(signed, namespace, workflow_id)
    except TenuoTemporalError as error:
        raise denial(error) from None
    except Exception as exc:  # anything else about the view: deny this call, never wedge
        raise denial(unsignable(tool, exc)) from None
    return names, signed
