"""A 4 x 4 grid of 200-step sparse-penalty runs (lr x penalty), one run at a time and one per core, on the
same warm worker pool (its start-up, a TensorFlow import per worker, is left out), from one run each.

    python benchmarks/sweep.py

Prints both times and the speed-up (aim on 2 cores: above 1.6x) and checks the rows are identical.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import sweep  # noqa: E402

GRID = [("lr", ["0.0003", "0.001", "0.01", "0.05"]), ("penalty", ["1", "5", "10", "50"])]


def timed(jobs: int) -> tuple[float, list]:
    # start every worker, import TensorFlow and trace the clipped variant there, outside the timing
    sweep.sweep("sparse-penalty", [("lr", [str(0.001 * (i + 1)) for i in range(4 * jobs)])],
                base={"variant": "clipped"}, steps=5, jobs=jobs)
    start = time.perf_counter()
    rows = sweep.sweep("sparse-penalty", GRID, base={"variant": "clipped"}, steps=200, seed=0, jobs=jobs)
    return time.perf_counter() - start, rows


def main() -> None:
    cores = os.cpu_count() or 1
    serial, rows_1 = timed(1)
    parallel, rows_n = timed(cores)
    same = [str(r) for r in rows_1] == [str(r) for r in rows_n]
    print(f"CPU cores: {cores}; 16 runs of 200 steps, sparse-penalty, lr x penalty")
    print(f"one run at a time     {serial:6.1f} s")
    print(f"{cores} runs at a time     {parallel:6.1f} s")
    print(f"speed-up              {serial / parallel:6.2f}x   identical rows: {same}")
    statuses = [r["status"] for r in rows_n]
    print("statuses: " + ", ".join(f"{s} {statuses.count(s)}" for s in ("ok", "diverged", "stalled", "error")))


if __name__ == "__main__":
    main()
