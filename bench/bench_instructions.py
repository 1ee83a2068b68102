"""Per-activity authorization cost in CPU instructions, counted by valgrind's callgrind.

``bench_activity.py`` times the plugin against raw ``tenuo_core`` (the floor)
in microseconds, and on a shared machine its verdict moves by several percent
between runs of the same code. This bench counts the instructions the same
loops execute instead: a count does not depend on what else the machine is
doing, so it tells a real change of the code from the machine's noise. It also
shows what the timed ratio cannot: how much code ours adds, apart from how fast
that code runs (the interpreter's instructions retire far slower than Ed25519's
arithmetic, so a few percent of instructions is a larger share of the time).

Method. Each loop runs in two processes under ``valgrind --tool=callgrind``,
with ``PYTHONHASHSEED=0`` and the garbage collector off (as inside the timed
bench's loops). Both build the same state as ``bench_activity.py``'s
in-process benchmark (``Micro``), a pool of ``--pool`` distinct activities and
a five-activity warm-up pool, and run the loop over the warm-up pool; one of
them then walks the pool too. The difference of their counts, over the
activities walked, is the loop's steady state per activity: building the pool
and first-call costs cancel. The first loop runs a third time, and the two
equal processes' difference is the counting noise. A run uses fresh keys and a
fresh warrant, and Ed25519 verification takes a data-dependent number of
steps, so whole runs differ by about half a percent.

Loops (the same functions as ``bench_activity.py``'s variants):

* ``floor.per_activity``: ``warrant.sign`` + ``Authorizer.check_chain``, with
  the protobuf header map a worker receives built in between (untimed there,
  counted here: ``shape`` below takes it out again).
* ``ours.total.unique_wf``: the plugin's real ``_sign``, the same map, then the
  real activity inbound ``execute_activity`` (default replay store).
* ``ours.sign`` / ``ours.verify.unique_wf``: the two sides alone.
* ``sign.warrant_sign`` / ``verify.check``: their ``tenuo_core`` calls alone.
* ``shape``: only the per-activity work both loops share that is not
  authorization (building the received input and reading the timer).
* With ``--steps``, each step ``bench_activity.py`` times in its ablation
  (``sign.*`` and ``verify.*``), walking the pool 20 times.

``--quick`` (the CI smoke run) counts only the first three, on a pool of 20.

Usage:
    python -m bench.bench_instructions [--quick] [--json PATH] [--pool N] [--steps]

The ratio printed is ``(ours - shape) / (floor - shape)``: the instructions of
ours' authorization over the floor's. It is a diagnostic beside the timed goal
(ours at most 1.15x the floor, judged in ``bench_activity.py``), not that goal:
instructions are not time. Without valgrind on the PATH it says so and exits 0.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._util import exit_with, finish, parser, run_meta
from integration.support.procs import REPO_ROOT, module_argv

WARM = 5  # activities in the warm-up loop every measured process runs first
MAIN_LOOPS = ("shape", "floor.per_activity", "ours.total.unique_wf")
SIDE_LOOPS = ("ours.sign", "sign.warrant_sign", "ours.verify.unique_wf", "verify.check",
              "whatif.verify_chain")
STEP_LOOPS = ("sign.names_for", "sign.canonical_args", "sign.workflow_scope",
              "sign.resolve_for_holder", "sign.headers", "verify.activity_headers",
              "verify.pop_arg_keys", "verify.names_for", "verify.canonical_args",
              "verify.workflow_scope", "verify.authorizer", "verify.replay", "verify.record")
STEP_PASSES = 20
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


# -- the measured process -------------------------------------------------------


def child(loop: str, pool_size: int, passes: int) -> int:
    """Build the in-process benchmark's state and pool, warm ``loop`` up, run it over the pool.

    The pool is walked ``passes`` times. With none, the process stops after
    the warm-up, and the parent subtracts its count from a walking process's:
    what is left is the steady state (building the pool, and first-call costs
    such as decoding the warrant headers once, land in both and cancel).

    The garbage collector stays off for the whole process (the timed bench
    turns it off inside each loop): a collection's cost depends on everything
    the process ever allocated, and would land in whichever loop triggers it.
    """
    gc.disable()
    from bench import bench_activity as bt

    micro = bt.Micro()
    variants = {v.name: v for v in micro.variants()}
    if loop != "shape" and loop not in variants:
        raise SystemExit(f"unknown loop {loop!r}; known: shape, {', '.join(sorted(variants))}")

    def run(pool: Any) -> None:
        if loop == "shape":
            _shape(micro, pool)
        else:  # the GC stays off, as set above
            bt._timed(variants[loop], pool, switch_gc=False)

    # A PoP checked in a later 30-second window than it was signed in costs
    # tenuo_core one more signature check. Under callgrind, building the pool
    # and walking it takes up to about 15 ms per activity: start early enough
    # in a window for what follows to fit in it.
    bt._away_from_window_edge(margin=min(bt.POP_WINDOW_SECS - 2.0, 5.0 + 0.03 * pool_size))
    with micro.workflow_context():
        warm = micro.make_pool(WARM)
        pool = micro.make_pool(pool_size)
        run(warm)
        for _ in range(passes):
            run(pool)
    return 0


def _shape(micro: Any, pool: Any) -> None:
    """What the per-activity loops do besides authorizing: the received input, the timers."""
    from time import perf_counter_ns

    make, proto_map, fn = micro.ExecuteActivityInput, micro.proto_map, micro.fn
    spent = 0
    for it in pool.items:
        t0 = perf_counter_ns()
        t1 = perf_counter_ns()
        received = make(fn=fn, args=it.args, executor=None, headers=proto_map(it.headers))
        t2 = perf_counter_ns()
        spent += perf_counter_ns() - t2 + (t1 - t0)
        del received


# -- the parent -----------------------------------------------------------------


def count(valgrind: str, loop: str, pool_size: int, passes: int, out_dir: str) -> int:
    """Instructions of one child process, as callgrind collected them."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".callgrind") as out:
        cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out.name}",
               *module_argv("bench.bench_instructions", "--child", loop, "--pool", str(pool_size),
                            "--passes", str(passes))]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800,
                              check=False, cwd=REPO_ROOT)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {loop!r} failed (exit {done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return int(found.group(1))


def measure(valgrind: str, loops: tuple[str, ...], pool_size: int,
            workers: int) -> dict[str, Any]:
    """Per-activity instructions of each loop, and the ratio of ours to the floor.

    Each loop runs in two processes, with and without walking the pool; the
    difference over the activities walked is its steady state per activity.
    The steps, a few hundred to a few thousand instructions each, walk the
    pool :data:`STEP_PASSES` times, so that what differs between two
    processes anyway (fresh keys, warrant ids and timestamps: their encodings
    vary by a few bytes) is spread thin. The first loop runs a third time:
    the two equal processes' difference is the counting noise.
    """
    # One plain run first: it writes the bytecode caches of everything the
    # children import, which a changed module would otherwise make the first
    # child (and only it) compile.
    subprocess.run(module_argv("bench.bench_instructions", "--child", "shape", "--pool", "1",
                               "--passes", "0"), check=True, capture_output=True, timeout=600,
                   cwd=REPO_ROOT)
    jobs = [(loop, passes) for loop in loops
            for passes in (0, STEP_PASSES if loop in STEP_LOOPS else 1)]
    jobs.append(jobs[1])
    with tempfile.TemporaryDirectory(prefix="tenuo-callgrind-") as out_dir, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        totals = list(pool.map(
            lambda job: count(valgrind, job[0], pool_size, job[1], out_dir), jobs))
    per = {loop: (totals[2 * i + 1] - totals[2 * i]) / (pool_size * jobs[2 * i + 1][1])
           for i, loop in enumerate(loops)}
    shape = per["shape"]
    floor, ours = per["floor.per_activity"] - shape, per["ours.total.unique_wf"] - shape
    res: dict[str, Any] = {
        "pool_size": pool_size,
        "process_totals": [{"loop": loop, "passes": passes, "instructions": total}
                           for (loop, passes), total in zip(jobs, totals, strict=True)],
        "noise_per_activity": abs(totals[-1] - totals[1]) / pool_size,
        "per_activity": per,
        "floor_net": floor,
        "ours_net": ours,
        "ours_over_floor": ours / floor,
        "extra": ours - floor,
    }
    if "ours.sign" in per:
        res["sign_extra"] = per["ours.sign"] - per["sign.warrant_sign"]
        res["verify_extra"] = per["ours.verify.unique_wf"] - per["verify.check"]
        # What-if, not a goal: ours if tenuo_core could check a PoP against a
        # chain verified once per warrant (its signatures are the same every time).
        res["whatif_prechecked_chain_over_floor"] = (ours - per["whatif.verify_chain"]) / floor
    return res


LABELS = {
    "shape": "the loops' shared non-authorization work (input, timers)",
    "floor.per_activity": "floor: warrant.sign + check_chain, in ours' loop shape",
    "ours.total.unique_wf": "ours: the plugin's start_activity + execute_activity",
    "ours.sign": "ours: sign side alone",
    "sign.warrant_sign": "tenuo_core warrant.sign alone",
    "ours.verify.unique_wf": "ours: verify side alone (default replay store)",
    "verify.check": "tenuo_core check_chain(as_of) alone",
    "whatif.verify_chain": "tenuo_core verify_chain alone (the chain's signatures)",
}


def report(res: dict[str, Any]) -> None:
    per = res["per_activity"]
    print(f"\n== Per-activity instructions under callgrind (steady state over a pool of "
          f"{res['pool_size']})")
    for loop, value in per.items():
        print(f"  {loop:26s} {value:>12,.0f}  {LABELS.get(loop, 'step (bench_activity)')}")
    print(f"\n  counting noise (two identical processes): {res['noise_per_activity']:,.1f} "
          "instructions per activity")
    sides = (f" (sign side +{res['sign_extra']:,.0f}, verify side +{res['verify_extra']:,.0f})"
             if "sign_extra" in res else "")
    print(f"  authorization, net of the shape: floor {res['floor_net']:,.0f}, "
          f"ours {res['ours_net']:,.0f}: +{res['extra']:,.0f}{sides}")
    print(f"  ours / floor in instructions: {res['ours_over_floor']:.3f} "
          "(a diagnostic: the timed goal is judged by bench_activity.py)")
    if "whatif_prechecked_chain_over_floor" in res:
        print(f"  what-if, not a goal: ours less verify_chain / floor: "
              f"{res['whatif_prechecked_chain_over_floor']:.3f} (a tenuo_core check against "
              "a chain verified once per warrant)")


def main(argv: list[str]) -> int:
    p = parser(__doc__, "CI smoke run: the three main loops over a pool of 20 activities")
    p.add_argument("--pool", type=int, default=None, help="activities per loop (default 300)")
    p.add_argument("--steps", action="store_true",
                   help="also count each step of the two sides (as bench_activity times them)")
    p.add_argument("--child", metavar="LOOP", help="internal: run one loop in this process")
    p.add_argument("--passes", type=int, default=1,
                   help="internal: with --child, how many times to walk the pool")
    args = p.parse_args(argv)
    pool_size = args.pool or (20 if args.quick else 300)
    if args.child:
        return child(args.child, pool_size, args.passes)
    loops = MAIN_LOOPS + (() if args.quick else SIDE_LOOPS) + (STEP_LOOPS if args.steps else ())
    started = time.perf_counter()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench_instructions: valgrind is not on the PATH; skipped (nothing measured)")
        return 0
    workers = os.cpu_count() or 1
    print(f"bench_instructions: {2 * len(loops) + 1} callgrind processes, {workers} at a "
          f"time, pool {pool_size} (instruction counts do not depend on the machine's load)",
          flush=True)
    res = measure(valgrind, loops, pool_size, workers)
    report(res)
    meta = run_meta(started, "tenuo", "temporalio")
    return finish(args.json, meta, res)


if __name__ == "__main__":
    exit_with(lambda: main(sys.argv[1:]))
