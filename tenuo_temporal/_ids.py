"""The plugin's fixed names: its id, the summary prefix and its local activities' names.

A leaf module: it imports no sibling, so every layer above may use it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MINT_ACTIVITY", "PLUGIN_ID", "REMOTE_SIGN_ACTIVITY", "SUMMARY_PREFIX"]

PLUGIN_ID: Final = "tenuo.TenuoTemporalPlugin"
SUMMARY_PREFIX: Final = f"[{PLUGIN_ID}]"
MINT_ACTIVITY: Final = "__tenuo_mint_child_warrant"
"""The local activity that attenuates a warrant for a child workflow."""
REMOTE_SIGN_ACTIVITY: Final = "__tenuo_remote_sign"
"""The local activity that signs a PoP with a remote signer."""
