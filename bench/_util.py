"""Helpers shared by the ``bench_*.py`` scripts: percentiles, batch timers, run metadata, output.

The scripts run as modules from the repository root (``python -m
bench.bench_activity``) and import this as ``bench._util``; the services they
start (the Temporal dev server, OpenBao, moto_server, the GCP fake) and the
quiet Temporal runtime come from ``integration.support``. It imports only the
standard library. The Temporal workflow modules (``_*workflows.py``) must not
import it: the workflow sandbox re-imports those and should see nothing but
temporalio.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from itertools import repeat
from pathlib import Path
from typing import Any, NoReturn

perf_counter_ns = time.perf_counter_ns


# -- arguments, metadata, output --------------------------------------------


def parser(doc: str | None, quick_help: str) -> argparse.ArgumentParser:
    """An argument parser with the options every bench has: ``--quick`` and ``--json PATH``."""
    found = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    found.add_argument("--quick", action="store_true", help=quick_help)
    found.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    return found


def versions(*dists: str) -> dict[str, str]:
    """The installed version of each distribution, keyed by the name as given ("?" if absent)."""
    found = {}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "?"
    return found


def run_meta(started: float, *dists: str, **fields: Any) -> dict[str, Any]:
    """``fields``, then the platform, the versions of ``dists`` and the seconds since ``started``.

    ``started`` is a ``time.perf_counter()`` reading taken when the run began.
    """
    return {
        **fields,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        **versions(*dists),
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (creating the parent directory)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def finish(json_path: str | None, meta: dict[str, Any], results: dict[str, Any]) -> int:
    """End a run: print its total time and, given a path, write ``{"meta": meta, **results}``.

    Returns:
        0, the exit status of a run that measured what it set out to.
    """
    print(f"\ntotal {meta['elapsed_s']:.1f} s")
    if json_path:
        write_json(json_path, {"meta": meta, **results})
        print(f"wrote {json_path}")
    return 0


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run ``main``, flush, and leave with ``os._exit`` and its status.

    temporalio can abort at interpreter exit (PyGILState_Release,
    sdk-python#300), so no bench leaves through interpreter teardown. A
    ``SystemExit`` message or an exception traceback is printed to stderr and
    the status is then 1.
    """
    try:
        status = main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except Exception:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from ``/proc``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- statistics ---------------------------------------------------------------


def spread(samples: list[float]) -> tuple[float, float, float]:
    """Median, p10 and p90 of ``samples`` (inclusive deciles); one sample is all three."""
    median = statistics.median(samples)
    if len(samples) < 2:
        return median, samples[0], samples[0]
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return median, deciles[0], deciles[-1]


# -- batch timers -----------------------------------------------------------
# One loop shape for every timed callable (pre-bound, positional arguments),
# so the loop and call overhead is the same in a floor and in what is measured.


def time_1(fn: Callable[[Any], Any], a: Any, n: int) -> int:
    """Nanoseconds for ``n`` calls ``fn(a)``."""
    it = repeat(None, n)
    t0 = perf_counter_ns()
    for _ in it:
        fn(a)
    return perf_counter_ns() - t0


def time_2(fn: Callable[[Any, Any], Any], a: Any, b: Any, n: int) -> int:
    """Nanoseconds for ``n`` calls ``fn(a, b)``."""
    it = repeat(None, n)
    t0 = perf_counter_ns()
    for _ in it:
        fn(a, b)
    return perf_counter_ns() - t0


def time_empty(n: int) -> int:
    """Nanoseconds for ``n`` turns of the loop alone (its overhead, in every batch)."""
    it = repeat(None, n)
    t0 = perf_counter_ns()
    for _ in it:
        pass
    return perf_counter_ns() - t0


def without_gc(batch: Callable[[int], int], n: int) -> int:
    """``batch(n)`` with the garbage collector off, so no collection lands inside the batch."""
    gc.disable()
    try:
        return batch(n)
    finally:
        gc.enable()


def calibrate(batch: Callable[[int], int], target_ns: float) -> int:
    """Pick N so that ``batch(N)`` (N calls, returns elapsed ns) takes about ``target_ns``."""
    n = 1
    while True:
        elapsed = min(without_gc(batch, n) for _ in range(3))
        if elapsed >= target_ns / 8 or n >= 1 << 24:
            break
        n *= 4
    return max(1, round(target_ns * n / max(elapsed, 1)))
