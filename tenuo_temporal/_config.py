"""``TenuoPluginConfig``: the one configuration surface of the plugin."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import tenuo_core

from tenuo_keys import KeyResolver, ResolverConfigError, Signer
from tenuo_keys._documents import open_document
from tenuo_keys._pop import POP_WINDOW_SECS
from tenuo_keys._resolver import as_key_resolver
from tenuo_keys._trust_documents import decode_roots, public_key_bytes

from ._audit import AuditCallback
from ._bounded import BoundedMap
from ._env_config import env_options
from ._replay import InMemoryReplayStore, ReplayStore
from ._revocation import Outcome, Revocation, RevocationProvider

__all__ = ["TenuoPluginConfig", "TrustedRootsProvider"]

logger = logging.getLogger("tenuo_temporal")

TrustedRootsProvider = Callable[[], Sequence[Any]]
"""Returns the current trusted root ``PublicKey`` list; called at start-up and
every ``trusted_roots_refresh_seconds``. A failing call keeps the last good list."""


_AUTHORIZERS_HELD = 64  # one per window count: a handful in practice
_ROOT_HINT = ("a tenuo_core.PublicKey, its 32 raw bytes, or those bytes as base64, "
              "base64url or hex, or PEM")


def _trusted_root(value: Any, where: str) -> Any:
    """``value`` as a ``tenuo_core.PublicKey``; refused with how to convert it."""
    if isinstance(value, tenuo_core.PublicKey):
        return value
    raw: bytes | None = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    elif isinstance(value, str):
        if value.lstrip().startswith("-----BEGIN"):
            try:
                return tenuo_core.PublicKey.from_pem(value)
            except Exception:
                raise ResolverConfigError(
                    f"{where} is a PEM block that is not an Ed25519 public key") from None
        raw = public_key_bytes(value)
        if raw is None:
            raise ResolverConfigError(
                f"{where} is a string of {len(value)} characters that is not a 32-byte "
                f"public key in hex, base64 or base64url; give {_ROOT_HINT}")
    else:
        raise ResolverConfigError(f"{where} must be {_ROOT_HINT}, got {type(value).__name__}")
    if len(raw) != 32:
        raise ResolverConfigError(f"{where} must be 32 bytes (an Ed25519 public key), got "
                                  f"{len(raw)}")
    try:
        return tenuo_core.PublicKey.from_bytes(raw)
    except Exception:
        raise ResolverConfigError(f"{where} is not a valid Ed25519 public key") from None


def roots_from_url(url: str) -> TrustedRootsProvider:
    """A trusted-roots provider reading a root-set document (``{"roots": [...]}``)."""
    document = open_document(url)

    def provider() -> list[Any]:
        return decode_roots(document.read(fresh=True), repr(document))

    return provider


def _trusted_roots(value: Any) -> tuple[Any, ...]:
    """A root or a collection of roots as a tuple of ``tenuo_core.PublicKey``.

    Raises:
        ResolverConfigError: Naming ``trusted_roots`` and what was wrong.
    """
    if isinstance(value, (tenuo_core.PublicKey, str, bytes, bytearray, memoryview)):
        return (_trusted_root(value, "trusted_roots"),)
    try:
        items = list(value)
    except TypeError:
        raise ResolverConfigError(
            f"trusted_roots must be {_ROOT_HINT}; a list of them; or a callable returning "
            f"a list, got {type(value).__name__}") from None
    return tuple(_trusted_root(item, f"trusted_roots[{index}]")
                 for index, item in enumerate(items))


def _allowlist(value: Collection[str] | None, name: str) -> frozenset[str] | None:
    """A signal or update allowlist as a frozenset; None stays None (no allowlist).

    Raises:
        ResolverConfigError: A bare string, a non-string name, or an empty list
            (which would refuse every name; None is what turns the list off).
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise ResolverConfigError(
            f"TenuoPluginConfig.{name} must be a list of names, not a single "
            f"{type(value).__name__}; write {name}=[{value!r}]")
    try:
        names = list(value)
    except TypeError:
        raise ResolverConfigError(
            f"TenuoPluginConfig.{name} must be a list of names or None, got "
            f"{type(value).__name__}") from None
    for item in names:
        if not isinstance(item, str) or not item:
            raise ResolverConfigError(
                f"TenuoPluginConfig.{name} holds {item!r}: each entry must be a "
                "non-empty signal or update name (str)")
    if not names:
        raise ResolverConfigError(
            f"TenuoPluginConfig.{name}=[] would refuse every one; use {name}=None to "
            "accept all, or list the names to accept")
    return frozenset(names)


def _clearances(requirements: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """``clearance_requirements`` checked by ``tenuo_core`` itself, at configuration.

    Raises:
        ResolverConfigError: A key that is not a pattern ``tenuo_core`` accepts,
            or a value that is not a ``tenuo_core.Clearance``.
    """
    if not requirements:
        return ()
    if not isinstance(requirements, Mapping):
        raise ResolverConfigError(
            f"clearance_requirements must map tool names or globs to tenuo_core.Clearance, "
            f"got {type(requirements).__name__}")
    probe = tenuo_core.Authorizer(trusted_roots=[])
    for pattern, level in requirements.items():
        if not isinstance(pattern, str) or not isinstance(level, tenuo_core.Clearance):
            raise ResolverConfigError(
                f"clearance_requirements must map tool names or globs (str) to "
                f"tenuo_core.Clearance, got {type(pattern).__name__} -> {type(level).__name__}")
        try:
            probe.require_clearance(pattern, level)
        except Exception as exc:
            raise ResolverConfigError(
                f"clearance_requirements[{pattern!r}]: {exc}") from None
    return tuple(requirements.items())


@dataclass
class TenuoPluginConfig:
    """How a worker signs and verifies.

    A worker that schedules activities needs ``key_resolver``; a worker that
    runs activities needs ``trusted_roots``. A verify-only activity worker
    needs no key resolver at all.

    Attributes:
        key_resolver: Resolves holder keys for PoP signing (any ``tenuo_keys``
            resolver, or your own ``KeyResolver``).
        trusted_roots: Issuer public keys (one or a list; each a
            ``tenuo_core.PublicKey``, its 32 bytes, or those bytes as base64,
            base64url or hex, or PEM), or a provider refreshed periodically.
        trusted_roots_refresh_seconds: Provider refresh interval.
        require_warrant: Deny activities that arrive without a warrant.
        pop_max_windows: 30-second PoP windows accepted around the time the
            activity was scheduled (5, the default, gives about -75 s to +60 s).
            The window size itself is fixed by ``tenuo_core``'s PoP format.
        clock_tolerance_secs: Clock skew tolerated for warrant times.
        max_chain_depth: Longest delegation chain accepted.
        audit_callback: Receives an ``AuditEvent`` for every decision.
        replay_store: Where PoP ownership is recorded; in-memory by default.
        replay_protection: How activity workers refuse a PoP presented again
            (``TENUO_POP_REPLAYED``). ``True`` (the default, also ``"run"``):
            each attempt of each activity is authorized once: the same attempt of
            the same activity (namespace, workflow id, run id, activity id)
            presented again is refused, while retries and every other workflow
            run; this is the reference's dedup, so a fleet that shares one
            warrant across workflows making the same call is never denied.
            ``"strict"``: a PoP also belongs to the workflow that first
            presented it, so headers copied onto another workflow are refused;
            two workflows making the same call under one warrant within one
            30-second window present the same bytes (Ed25519 is deterministic,
            and a PoP names no workflow unless the warrant is workflow-scoped),
            so the second of those is refused too. ``False``: no claims. A claim
            lives until the warrant chain expires (at least the PoP windows):
            every retry keeps its first scheduling time, by which freshness is
            judged. Size ``replay_store`` for the call rate times the warrants'
            lifetime; a shared store makes either mode span a fleet.
        preload_key_ids: Key ids to load before the worker polls.
        preload_all: Also load every key the resolver can list.
        tool_mappings: Activity type to warrant tool name, where they differ.
        metrics: Emit counters and latency through Temporal's metric meter.
        delegation: Register the delegation minting local activity on workflow
            workers (default). A worker that runs no activities of its own is
            then started with ``no_remote_activities=True``, so it keeps to
            local activities and never takes other workers' activity tasks.
            ``False`` leaves it out.
        signers: Key id to a ``tenuo_keys.Signer`` that signs PoP for it
            instead of ``key_resolver`` (a remote KMS key, or a ``LocalSigner``).
        require_workflow_binding: Activity workers refuse (``TENUO_WORKFLOW_UNBOUND``)
            a warrant whose capability for the tool does not bind it to the
            running workflow with ``Exact`` ``_workflow_namespace`` and
            ``_workflow_id`` constraints. Warrants sit in every history, so
            anyone who can start workflows on a task queue can start one with
            a copied warrant and key id; a warrant bound to one workflow id is
            useless to them (see ``docs/SECURITY.md``, trust model).
        activity_summaries: Label every activity the plugin signs in the
            Temporal Web UI, ``[tenuo.TenuoTemporalPlugin] tool`` (followed by
            ``: <your summary>`` when the call gave one). Temporal stores a
            summary in the scheduling event and the SDK converts it with the
            payload converter, so it has a cost per activity: about 0.6 ms of
            worker plus server CPU on the local dev server (``make bench``,
            ``diag.summary``). ``False`` leaves summaries as the caller set them.
        activity_fns: Activity functions whose parameter names PoP binds on a
            workflow worker that does not register them itself (the
            reference's name). The plugin learns them from the worker's
            ``activities``; hand-wired ``TenuoWorkerInterceptor`` reads them here.
        nexus_endpoint: The Nexus endpoint name this worker's Nexus handlers
            serve (experimental). Every Nexus start is checked as the tool
            ``nexus:<nexus_endpoint>:<service>:<operation>`` before its handler
            runs; a worker that handles Nexus operations without it refuses
            every start that carries a warrant.
        authorized_signals: Signal names this worker's workflows accept (the
            reference's name). An unlisted signal is dropped before its handler
            and audited; the run goes on. None (the default) accepts every
            signal. Queries are never checked.
        authorized_updates: Update names this worker's workflows accept. An
            unlisted update is rejected in validation: the caller gets a
            ``TENUO_CONSTRAINT_VIOLATION`` error naming it, the handler never
            runs and nothing is written to the run's history. None (the
            default) accepts every update.
        revocation_list: A ``tenuo_core.SignedRevocationList``, or a document
            URL it is read from and refreshed (``vault://host:8200/secret/tenuo/srl``,
            ``awssm://…``, ``gcpsm://…``, ``file:///…``). It must be signed by a
            trusted root. A worker configured for revocation authorizes nothing
            until it holds a valid list (the plugin loads it before polling).
            ``trusted_roots`` takes such a URL too (a root-set document,
            ``{"roots": ["<hex>", ...]}``), refreshed as a provider.
        revocation_list_provider: A callable returning the current list (or its
            bytes), refreshed every ``revocation_refresh_secs``; the
            reference's name. Versions only move forward: a rollback is
            refused, logged and counted; a failed refresh keeps the last good list.
        revocation_refresh_secs: Refresh interval of a provider or URL (60 s
            when unset).
        revocation_max_age_secs: Beyond the reference: a held list issued longer
            ago than this denies every activity retryably
            (``TENUO_REVOCATION_STALE``) until a newer one is loaded.
            Publishers then re-sign the list more often than this.
        dry_run: Shadow mode (the reference's name): an activity the verifier
            denies runs anyway, and its decision is audited and counted as a
            shadow denial carrying the denial type it would have had
            (``AuditEvent.shadow``, metric ``tenuo_activity_shadow_denied``).
            Activities only: Nexus starts, signals, updates and workflow-side
            denials still enforce. For rolling enforcement out; the worker logs
            a warning when it starts.
        on_denial: What an activity denial does when ``dry_run`` is off:
            ``"raise"`` (the default) fails the activity with a non-retryable
            ``ApplicationError``; ``"log"`` logs it and returns None to the
            workflow without running the activity; ``"skip"`` returns None
            without a log line. Each is audited and counted as a denial.
        audit_allow: Send allowed decisions to ``audit_callback``.
        audit_deny: Send denials (shadow denials included) to
            ``audit_callback``. Neither switch changes metrics or logging.
        approval_handler: Called on the activity worker when a warrant's
            approval gate fires for a call and no approvals came with it
            (``x-tenuo-approvals``, see ``set_activity_approvals``). It gets
            a ``tenuo.approval.ApprovalRequest`` (tool, arguments, warrant id,
            ``request_hash``, approvers, threshold, message) and returns, or
            awaits, one ``SignedApproval`` or a list. It runs only once the
            chain, PoP, tool and constraints have passed, outside the workflow
            sandbox and never on replay; ``tenuo_core`` then judges what it
            returned. Raising ``tenuo.approval.ApprovalDenied`` denies
            (``TENUO_APPROVAL_REQUIRED``); a retryable ``ApplicationError``
            (approval pending) fails the attempt for Temporal to retry.
            None (the default): a gated call without approvals is denied.
        clearance_requirements: Tool name or glob (``"*"``, ``"admin_*"``) to
            the least ``tenuo_core.Clearance`` a warrant must carry for it,
            enforced by ``Authorizer.require_clearance``
            (``TENUO_CLEARANCE_INSUFFICIENT``). A warrant minted without a
            clearance has none, below every level.
    """

    key_resolver: KeyResolver | None = None
    trusted_roots: Sequence[Any] | TrustedRootsProvider = ()
    trusted_roots_refresh_seconds: float = 300.0
    require_warrant: bool = True
    pop_max_windows: int = 5
    clock_tolerance_secs: int = 30
    max_chain_depth: int = 8
    audit_callback: AuditCallback | None = None
    replay_store: ReplayStore | None = None
    replay_protection: bool | Literal["run", "strict"] = True
    preload_key_ids: Sequence[str] = ()
    preload_all: bool = True
    tool_mappings: Mapping[str, str] = field(default_factory=dict)
    metrics: bool = True
    delegation: bool | None = None
    signers: Mapping[str, Signer] = field(default_factory=dict)
    activity_summaries: bool = True
    require_workflow_binding: bool = False
    activity_fns: Sequence[Callable[..., Any]] = ()
    nexus_endpoint: str | None = None
    authorized_signals: Collection[str] | None = None
    authorized_updates: Collection[str] | None = None
    revocation_list: Any = None
    revocation_list_provider: RevocationProvider | None = None
    revocation_refresh_secs: float | None = None
    revocation_max_age_secs: float | None = None
    dry_run: bool = False
    on_denial: Literal["raise", "log", "skip"] = "raise"
    audit_allow: bool = True
    audit_deny: bool = True
    approval_handler: Callable[[Any], Any] | None = None
    clearance_requirements: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        self.authorized_signals = _allowlist(self.authorized_signals, "authorized_signals")
        self.authorized_updates = _allowlist(self.authorized_updates, "authorized_updates")
        if isinstance(self.trusted_roots, str) and "://" in self.trusted_roots:
            self.trusted_roots = roots_from_url(self.trusted_roots)
        if not callable(self.trusted_roots):
            self.trusted_roots = _trusted_roots(self.trusted_roots)
        if self.key_resolver is None and not self.trusted_roots and not self.signers:
            raise ResolverConfigError(
                "TenuoPluginConfig needs key_resolver= or signers= (to sign PoP on workflow "
                "workers), trusted_roots= (to verify on activity workers), or both"
            )
        for key_id, signer in self.signers.items():
            if not isinstance(key_id, str) or not isinstance(signer, Signer):
                raise ResolverConfigError(
                    f"signers must map key ids (str) to tenuo_keys.Signer, got "
                    f"{type(key_id).__name__} -> {type(signer).__name__}")
        if self.key_resolver is not None:
            # A resolver written for tenuo.temporal 0.3.3, or a bare class with
            # resolve/resolve_sync, is adapted here, once: the plugin then
            # programs against the KeyResolver contract only.
            self.key_resolver = as_key_resolver(self.key_resolver)
        for name in ("pop_max_windows", "max_chain_depth"):
            if int(getattr(self, name)) < 1:
                raise ResolverConfigError(f"TenuoPluginConfig.{name} must be >= 1")
        if self.trusted_roots_refresh_seconds <= 0:
            raise ResolverConfigError("trusted_roots_refresh_seconds must be positive")
        if self.replay_protection not in (True, False, "run", "strict"):
            raise ResolverConfigError(
                f"TenuoPluginConfig.replay_protection must be True (or \"run\"), "
                f"\"strict\" or False, not {self.replay_protection!r}")
        if self.on_denial not in ("raise", "log", "skip"):
            raise ResolverConfigError(
                f"TenuoPluginConfig.on_denial must be \"raise\", \"log\" or \"skip\", "
                f"not {self.on_denial!r}")
        if self.replay_store is None:
            self.replay_store = InMemoryReplayStore()
        if self.approval_handler is not None and not callable(self.approval_handler):
            raise ResolverConfigError(
                f"approval_handler must be callable (sync or async, taking an "
                f"ApprovalRequest), got {type(self.approval_handler).__name__}")
        self._clearances = _clearances(self.clearance_requirements)
        self._roots_lock = threading.Lock()
        self._roots: tuple[Any, ...] = ()
        self._authorizers: BoundedMap[int, Any] = BoundedMap(_AUTHORIZERS_HELD)
        if not callable(self.trusted_roots):
            self._set_roots(self.trusted_roots)
        self.revocation = self._revocation()

    def _revocation(self) -> Revocation | None:
        source, provider = self.revocation_list, self.revocation_list_provider
        if source is not None and provider is not None:
            raise ResolverConfigError(
                "give revocation_list= or revocation_list_provider=, not both")
        if provider is not None and not callable(provider):
            raise ResolverConfigError("revocation_list_provider must be a callable")
        if source is None and provider is None:
            if self.revocation_refresh_secs is not None or \
                    self.revocation_max_age_secs is not None:
                raise ResolverConfigError(
                    "revocation_refresh_secs / revocation_max_age_secs need "
                    "revocation_list= or revocation_list_provider=")
            return None
        refresh = 60.0 if self.revocation_refresh_secs is None else \
            float(self.revocation_refresh_secs)
        max_age = self.revocation_max_age_secs
        if not refresh > 0 or (max_age is not None and not max_age > 0):
            raise ResolverConfigError(
                "revocation_refresh_secs and revocation_max_age_secs must be positive")
        revocation = Revocation(source if source is not None else provider, refresh,
                                None if max_age is None else float(max_age),
                                self.clock_tolerance_secs)
        # A list given as an object is checked now, against static roots.
        if not revocation.refreshes and self._roots and \
                revocation.refresh(self._roots) != "loaded":
            raise ResolverConfigError(
                    "revocation_list is not signed by any of trusted_roots")
        return revocation

    def refresh_revocation_list(self) -> Outcome:
        """Read the revocation list source now and install what it returns.

        Returns:
            ``"loaded"``, ``"unchanged"``, or why the held list was kept:
            ``"rollback"``, ``"untrusted"``, ``"failed"``.
        """
        revocation = self.revocation
        if revocation is None:
            return "unchanged"
        with self._roots_lock:
            roots = self._roots
        return revocation.refresh(roots)

    @classmethod
    def from_env(cls, *, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> TenuoPluginConfig:
        """A configuration from ``TENUO_*`` environment variables (see ``_env_config.VARIABLES``).

        ``TENUO_KEY_RESOLVER`` is a resolver URL (default ``env://``: keys in
        ``TENUO_KEY_<id>``); ``TENUO_TRUSTED_ROOTS`` holds comma-separated
        public keys in hex or base64, or a root-set document URL. Unknown
        ``TENUO_*`` variables are warned about. Keyword arguments win over
        the environment, and the variables of the fields they set are not
        read::

            config = TenuoPluginConfig.from_env(audit_callback=events.append)

        Args:
            environ: Read instead of ``os.environ``.
            **overrides: ``TenuoPluginConfig`` fields.

        Raises:
            ResolverConfigError: A malformed variable, named with the form it
                expects; its value is never repeated.
        """
        options = env_options(environ, skip=frozenset(overrides))
        roots = options.get("trusted_roots")
        if roots is not None and not isinstance(roots, str):  # a str is a document URL
            options["trusted_roots"] = tuple(
                _trusted_root(text, f"$TENUO_TRUSTED_ROOTS[{index}]")
                for index, text in enumerate(roots))
        options.update(overrides)
        return cls(**options)

    @property
    def replay_mode(self) -> Literal["run", "strict"] | None:
        """``"run"``, ``"strict"``, or None when replay protection is off."""
        if self.replay_protection is False:
            return None
        return "strict" if self.replay_protection == "strict" else "run"

    # -- trusted roots and authorizers -----------------------------------

    @property
    def verifies(self) -> bool:
        """True when this config can verify (it has trusted roots)."""
        return bool(self.trusted_roots)

    @property
    def signs(self) -> bool:
        """True when this config can sign (it has a key resolver)."""
        return self.key_resolver is not None

    def refresh_trusted_roots(self) -> bool:
        """Call the provider now; keep the last good roots if it fails.

        Returns:
            True when the roots were (re)loaded.
        """
        provider = self.trusted_roots
        if not callable(provider):
            return True
        try:
            roots = list(provider())
        except Exception as exc:
            logger.error("tenuo_temporal: trusted_roots provider failed (%s); keeping "
                         "the last good roots", type(exc).__name__)
            return False
        if not roots:
            logger.error("tenuo_temporal: trusted_roots provider returned no roots; keeping "
                         "the last good roots")
            return False
        self._set_roots(roots)
        return True

    def _set_roots(self, roots: Sequence[Any]) -> None:
        checked = _trusted_roots(roots)
        with self._roots_lock:
            self._roots = checked
            self._authorizers = BoundedMap(_AUTHORIZERS_HELD)

    def authorizer(self, windows: int) -> Any:
        """A ``tenuo_core.Authorizer`` accepting ``windows`` PoP windows.

        Raises:
            RuntimeError: No trusted roots are loaded (fail closed).
        """
        found = self._authorizers.get(windows)  # lock-free hit: dict reads are atomic
        if found is not None:
            return found
        with self._roots_lock:
            found = self._authorizers.get(windows)
            if found is not None:
                return found
            if not self._roots:
                raise RuntimeError("no trusted roots loaded")
            found = tenuo_core.Authorizer(
                trusted_roots=list(self._roots),
                clock_tolerance_secs=self.clock_tolerance_secs,
                pop_window_secs=POP_WINDOW_SECS,
                pop_max_windows=windows,
            )
            for pattern, level in self._clearances:
                found.require_clearance(pattern, level)
            self._authorizers[windows] = found
            return found

    def tool_for(self, activity_type: str) -> str:
        """The warrant tool name for an activity type."""
        return self.tool_mappings.get(activity_type, activity_type)

    def __repr__(self) -> str:
        return (
            f"TenuoPluginConfig(key_resolver={self.key_resolver!r}, "
            f"trusted_roots={len(self._roots)} root(s), require_warrant={self.require_warrant}, "
            f"pop_max_windows={self.pop_max_windows}, revocation_version="
            f"{self.revocation.version if self.revocation is not None else None})"
        )
