"""A 4 x 4 grid of 200-step sparse-penalty runs (lr x penalty): one run at a time, one per core, and on threads of
this process, each timed after a warm-up that reached every worker it then uses.

    python benchmarks/sweep.py [--repeats 5]

A pool's worker imports TensorFlow and compiles the step on its first point, so the warm-up submits points to the
pool until every one of its workers has run one (their process ids say so), and the threads' warm-up trains the
structure in this process. Each way is then timed ``--repeats`` times, interleaved; printed: the best and the
spread (min-max), the speed-up of one per core over one at a time (aim on 2 cores: above 1.6x), and whether the
rows are identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import settings as config, sweep  # noqa: E402

GRID = [("lr", ["0.0003", "0.001", "0.01", "0.05"]), ("penalty", ["1", "5", "10", "50"])]
BASE = {"variant": "clipped"}
DEMO = "sparse-penalty"


def _warm_point() -> int:
    """One short point of the grid's structure in a worker (its TensorFlow import and compile); its process id."""
    sweep.run_point(DEMO, BASE, 5, 0, config.spec(DEMO).module)
    return os.getpid()


def warm_pool(workers: int) -> None:
    """Submit warm points to the pool of ``workers`` until every worker has run one."""
    executor = sweep._pool(workers)
    seen: set[int] = set()
    while len(seen) < workers:
        seen.update(f.result() for f in [executor.submit(_warm_point) for _ in range(2 * workers)])


def timed(jobs: int, backend: str) -> tuple[float, list]:
    start = time.perf_counter()
    rows = sweep.sweep(DEMO, GRID, base=BASE, steps=200, seed=0, jobs=jobs, backend=backend)
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    ways = {"one run at a time": (1, "local"), f"{cores} runs at a time": (cores, "local"),
            f"{cores} threads of this process": (cores, "threads")}
    warm_pool(cores)  # the pool never shrinks: the one-at-a-time sweep uses one of these warm workers
    from lossviz.training import Trainer

    Trainer(DEMO, BASE).warm()  # the threads' structure and batch size, in this process
    times: dict[str, list[float]] = {name: [] for name in ways}
    rows: dict[str, list] = {}
    for _ in range(args.repeats):
        for name, (jobs, backend) in ways.items():
            seconds, rows[name] = timed(jobs, backend)
            times[name].append(seconds)
    print(f"CPU cores: {cores}; 16 runs of 200 steps, {DEMO}, lr x penalty; best of {args.repeats} (spread)")
    for name, found in times.items():
        print(f"  {name:32s} {min(found):6.2f} s ({min(found):.2f}-{max(found):.2f})")
    serial, parallel = min(times["one run at a time"]), min(times[f"{cores} runs at a time"])
    one, many, threads = (str(r) for r in rows.values())
    print(f"  speed-up, {cores} at a time over one  {serial / parallel:6.2f}x   identical rows: one and {cores} at a time "
          f"{one == many}, threads and workers {threads == many} (workers pin TensorFlow to one thread)")
    statuses = [r["status"] for r in rows[f"{cores} runs at a time"]]
    print("  statuses: " + ", ".join(f"{s} {statuses.count(s)}" for s in sweep.STATUSES))


if __name__ == "__main__":
    main()
