"""The tenuo-keys quickstart: a holder key from a resolver signs, tenuo_core verifies.

Run it with ``make demo`` (or ``python examples/quickstart.py``). Everything is
embedded: keys are generated, the holder key is put in an environment variable
the way a developer would, and an ``EnvKeyResolver`` serves it from memory,
exactly as the Temporal plugin does inside the workflow sandbox.
"""

from __future__ import annotations

import os
import time

import tenuo_core
from tenuo.exceptions import TenuoError

from tenuo_keys import EnvKeyResolver, encode_signing_key
from tenuo_keys.testing import io_guard


def main() -> int:
    # The control plane's issuer key and the agent's holder key.
    issuer = tenuo_core.SigningKey.generate()
    holder = tenuo_core.SigningKey.generate()
    os.environ.setdefault("TENUO_ENV", "development")
    os.environ["TENUO_KEY_agent1"] = encode_signing_key(holder)

    warrant = tenuo_core.Warrant.issue(
        keypair=issuer,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data/reports")}},
        ttl_seconds=600,
        holder=holder.public_key,
    )
    print(f"minted warrant {warrant.id}: tools={warrant.tools}, holder=agent1")

    authorizer = tenuo_core.Authorizer(trusted_roots=[issuer.public_key])
    with EnvKeyResolver() as resolver:
        print(f"preloaded {resolver.preload_all()} key(s) from TENUO_KEY_*")
        calls = [
            ("read_file", {"path": "/data/reports/2026-11.csv"}),
            ("read_file", {"path": "/data/reports/../../etc/passwd"}),
            ("delete_file", {"path": "/data/reports/2026-11.csv"}),
        ]
        outcomes = []
        for tool, args in calls:
            # In memory only: what the workflow sandbox may do.
            with io_guard() as seen:
                key = resolver.resolve_for_holder_sync("agent1", warrant.authorized_holder)
            assert not seen.events, seen.events
            pop = warrant.sign(key, tool, args, int(time.time()))
            try:
                authorizer.check_chain([warrant], tool, args, signature=pop)
            except TenuoError as exc:
                outcomes.append(False)
                print(f"DENIED   {tool}({args['path']}): {type(exc).__name__}: {exc}")
            else:
                outcomes.append(True)
                print(f"ALLOWED  {tool}({args['path']})")
    del os.environ["TENUO_KEY_agent1"]
    ok = outcomes == [True, False, False]
    print("demo finished:", "as expected" if ok else "UNEXPECTED OUTCOMES")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
