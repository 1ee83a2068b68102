"""Checks shared by the remote signers' own tests (``test_vault_transit.py``, ``test_gcp_kms.py``).

One issuer, one tool and one argument set; a warrant for a holder; the
verifier's acceptance of a PoP; and the sign-latency measurement each signer
reports.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import tenuo_core

from tenuo_keys import Signer
from tenuo_keys._pop import pop_message

__all__ = ["ARGS", "ISSUER", "TOOL", "accepts", "sign_latency_ms", "unique", "warrant_for"]

ISSUER = tenuo_core.SigningKey.generate()
TOOL = "read_file"
ARGS = {"path": "/data/report.txt", "limit": 10}


def unique(name: str) -> str:
    """A key id unique to this run."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def warrant_for(holder: Any) -> Any:
    """A warrant from :data:`ISSUER` granting :data:`TOOL` (any arguments) to ``holder``."""
    return tenuo_core.Warrant.issue(keypair=ISSUER, capabilities={TOOL: {}}, ttl_seconds=600,
                                    holder=holder)


def accepts(warrant: Any, pop: bytes, args: dict[str, Any] | None = None) -> None:
    """The authorizer accepts ``pop`` for :data:`TOOL` with ``args`` (default :data:`ARGS`)."""
    tenuo_core.Authorizer(trusted_roots=[ISSUER.public_key]).check_chain(
        [warrant], TOOL, ARGS if args is None else args, signature=pop)


def sign_latency_ms(signer: Signer, warrant: Any, *, warmup: int = 20,
                    samples: int = 300) -> tuple[float, float]:
    """Median and p99 of ``signer.sign`` for one PoP message of ``warrant``, in milliseconds."""
    holder = warrant.authorized_holder
    message = pop_message(warrant, TOOL, ARGS, int(time.time()))
    for _ in range(warmup):
        signer.sign(message, holder=holder)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        signer.sign(message, holder=holder)
        timings.append(time.perf_counter() - started)
    timings.sort()
    return statistics.median(timings) * 1e3, timings[int(len(timings) * 0.99)] * 1e3
