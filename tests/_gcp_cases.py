"""Status codes that every GCP backend maps the same way (``_gcp_common.SHARED_CODES``)."""

from __future__ import annotations

from google.api_core import exceptions as gexc

from tenuo_keys import errors

SHARED_STATUS_CASES = [
    (gexc.Unauthenticated("bad token"), errors.KeyAccessDenied, False, "unauthenticated"),
    (gexc.ServiceUnavailable("down"), errors.BackendUnavailable, True, "UNAVAILABLE"),
    (gexc.DeadlineExceeded("slow"), errors.BackendUnavailable, True, "DEADLINE_EXCEEDED"),
    (gexc.ResourceExhausted("quota"), errors.BackendUnavailable, True, "RESOURCE_EXHAUSTED"),
    (gexc.InternalServerError("oops"), errors.BackendUnavailable, True, "INTERNAL"),
    (gexc.Unknown("?"), errors.BackendUnavailable, True, "UNKNOWN"),
    (gexc.Aborted("conflict"), errors.BackendUnavailable, True, "ABORTED"),
]
"""``(exception, error type, retryable, text in the reason)`` for each."""
