"""errors.py holds every wire error type, and the one denial() that raises them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from temporalio.exceptions import ApplicationError

import tenuo_temporal._interceptors as icp
import tenuo_temporal._remote as remote
from tenuo_temporal import errors
from tenuo_temporal.workflow import AuthorizedWorkflow


def test_the_failure_types_are_classes_with_their_wire_strings():
    assert errors.KeyResolutionFailed.type == "TENUO_KEY_RESOLUTION"
    assert errors.RemoteSignerNeedsHelper.type == "TENUO_REMOTE_SIGNER_NEEDS_HELPER"
    assert errors.DelegationUnavailable.type == "TENUO_DELEGATION_UNAVAILABLE"
    # The old constant names stay importable where they were.
    assert errors.KEY_RESOLUTION_TYPE == "TENUO_KEY_RESOLUTION"
    assert remote.NEEDS_HELPER_TYPE == "TENUO_REMOTE_SIGNER_NEEDS_HELPER"


def test_denial_is_non_retryable_and_keeps_the_message():
    raised = errors.denial(errors.WarrantMissing("no warrant", tool="t"))
    assert isinstance(raised, ApplicationError)
    assert (raised.type, raised.message, raised.non_retryable) == (
        "TENUO_WARRANT_MISSING", "warrant missing: no warrant", True)
    # The failures carry their reason alone, as the inline errors they replace did.
    failed = errors.denial(errors.KeyResolutionFailed("key 'k' is not the warrant's holder"))
    assert (failed.type, failed.message, failed.non_retryable) == (
        "TENUO_KEY_RESOLUTION", "key 'k' is not the warrant's holder", True)
    retry = errors.denial(errors.KeyResolutionFailed("later"), non_retryable=False)
    assert retry.non_retryable is False
    assert str(errors.KeyResolutionFailed("")) == ""


def test_moved_names_stay_importable_from_the_interceptor_module():
    assert icp.denial is errors.denial and icp.unsignable is errors.unsignable
    assert icp.MINT_ACTIVITY == "__tenuo_mint_child_warrant"
    assert icp.PLUGIN_ID == "tenuo.TenuoTemporalPlugin"
    assert icp.SUMMARY_PREFIX == "[tenuo.TenuoTemporalPlugin]"
    assert remote.REMOTE_SIGN_ACTIVITY == "__tenuo_remote_sign"


def test_authorized_workflows_carry_the_mark_the_interceptor_reads():
    class Report(AuthorizedWorkflow):
        pass

    assert getattr(Report, "__tenuo_authorized__", False) is True
    assert getattr(object, "__tenuo_authorized__", False) is False


def test_error_types_names_every_wire_type():
    from tenuo_temporal.errors import ERROR_TYPES

    assert {"TENUO_KEY_RESOLUTION", "TENUO_REMOTE_SIGNER_NEEDS_HELPER",
            "TENUO_DELEGATION_UNAVAILABLE", "TENUO_WORKFLOW_UNBOUND",
            "TENUO_CONSTRAINT_VIOLATION"} <= set(ERROR_TYPES)
    assert all(cls.type == name for name, cls in ERROR_TYPES.items())


def test_import_without_temporalio_names_the_extra_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["temporalio"] = None  # what an environment without the extra gives
        try:
            import tenuo_temporal
        except ImportError as exc:
            import tenuo_keys
            assert isinstance(exc, tenuo_keys.MissingExtraError), type(exc)
            assert exc.extra == "temporal" and exc.missing == "temporalio"
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("tenuo_temporal needs 'temporalio', which is not installed: "
                                  "pip install 'tenuo-keys[temporal]'")
