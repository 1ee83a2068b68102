"""Which holder keys workflow tasks sign with: the plugin keeps those loaded.

Signing reads memory only, so a key a workflow needs only now and then could
expire from the resolver's cache between its workflow tasks. The plugin's
keep-warm task (``_plugin``) touches the ids :class:`KeysInUse` lists. Only
ids that resolved to their warrant's holder go in, so a sender's made-up key
ids never reach it; the map is bounded and entries age out.
"""

from __future__ import annotations

import itertools
import time

from ._bounded import BoundedMap
from ._headers import WarrantContext

__all__ = ["KEEP_WARM_SECONDS", "KEYS_IN_USE_HELD", "KeysInUse"]

KEYS_IN_USE_HELD = 10_000
"""Most key ids kept warm: only ids that resolved to their warrant's holder count."""
KEEP_WARM_SECONDS = 1800.0
"""Keys a workflow task needed within this long are kept loaded: longer than
Temporal's longest workflow-task retry interval (10 min by default)."""
_TOUCH_EVERY = 60.0  # seconds between refreshes of one key's keep-warm entry
_serials = itertools.count()


class KeysInUse:
    """Key ids that recently signed for their warrant's holder, with when."""

    def __init__(self) -> None:
        self._when: BoundedMap[str, float] = BoundedMap(
            KEYS_IN_USE_HELD, ttl=KEEP_WARM_SECONDS, timer=time.monotonic)
        self._serial = next(_serials)  # names this map in contexts' marks

    def note(self, key_id: str, context: WarrantContext) -> None:
        """Keep a key warm that just signed for ``context``'s holder.

        Noted at most once a minute per context (a mark on the context, read
        without a lock), so the bounded map is not touched per activity.
        """
        now = time.monotonic()
        noted = context.local.noted_at
        if noted.get(self._serial, -_TOUCH_EVERY) > now - _TOUCH_EVERY:
            return
        noted[self._serial] = now
        self._when[key_id] = now

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._when

    def __len__(self) -> int:
        return len(self._when)

    def keys(self) -> list[str]:
        """The key ids signed with within :data:`KEEP_WARM_SECONDS`."""
        self._when.expire()
        return self._when.keys()
