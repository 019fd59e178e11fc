"""The Runs page on a long file that is still being written: does a redraw of a million-row run cost what a redraw
of a short one costs?

A real run's records (``sparse-penalty``, the per-term probe on, as ``python -m lossviz train`` writes them) are
repeated to 1,000, 100,000 and 1,000,000 rows, steps counting on, and written to a CSV in a temporary folder. For
each size it prints:

- first read: the whole file parsed by ``runfiles.Tail`` (once per session and file), and the rows it keeps
  (bounded as a live run's log is: older rows thinned, the first, the first NaN/inf and knob changes kept);
- redraw: what the page's fragment does twice a second while the file grows: 250 new rows are appended (half a
  second of a CLI run at 500 steps/s), ``Tail.read`` takes them, then the run table's numbers, the bounded
  window, every chart of the page and their serialisation (``plotly.io.to_json``, as Streamlit sends them).
  The median of 20 redraws, and the file's last redraw against its first (flat: the cost does not grow).

    python benchmarks/runs_folder.py [--sizes 1000,100000,1000000]

Aim (issue 19): a file of a million rows redraws as fast as a short one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.io as pio  # noqa: E402

from lossviz import charts, records, runfiles  # noqa: E402
from lossviz.training import Trainer  # noqa: E402

REDRAWS = 20
NEW_ROWS = 250


def real_rows(steps: int = 2000) -> pd.DataFrame:
    with Trainer("sparse-penalty", {}) as trainer:
        return records.frame(list(trainer.run(steps)))


def write(path: str, base: pd.DataFrame, start: int, count: int, header: bool) -> None:
    """``count`` rows of ``base`` repeated, their steps from ``start + 1`` on."""
    reps = -(-count // len(base))
    table = pd.concat([base] * reps, ignore_index=True).iloc[:count].copy()
    table["step"] = np.arange(start + 1, start + count + 1)
    with open(path, "a", encoding="utf-8", newline="") as f:
        table.to_csv(f, index=False, header=header, lineterminator="\n")


def redraw(tail: runfiles.Tail) -> float:
    began = time.perf_counter()
    run = tail.read()
    bad = run.rows.nonfinite_rows()  # the run table's and the NaN panel's numbers
    _ = (len(run.rows), run.rows.column("loss")[-1], bad[:1], run.settings)
    figures = charts.live_figures({run.name: records.window(run.rows)}, every=1)
    sum(len(pio.to_json(f, validate=False)) for f in figures.values())
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000,1000000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    base = real_rows()
    print(f"{'rows':>10} {'MiB':>6} {'rows kept':>10} {'first read':>11} {'redraw (median)':>16} "
          f"{'last / first redraw':>20}")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            name = f"run_{size}.csv"
            path = os.path.join(folder, name)
            write(path, base, 0, size, header=True)
            tail = runfiles.Tail(folder, name)
            began = time.perf_counter()
            tail.read()
            first = time.perf_counter() - began
            write(path, base, size, NEW_ROWS, header=False)
            redraw(tail)  # (the first figures of a process cost more)
            times = []
            for i in range(1, REDRAWS + 1):
                write(path, base, size + i * NEW_ROWS, NEW_ROWS, header=False)
                times.append(redraw(tail))
            rows = tail.read().rows
            assert rows.total == size + (REDRAWS + 1) * NEW_ROWS
            mib = os.path.getsize(path) / 2**20
            print(f"{size:>10,} {mib:6.0f} {len(rows):>10,} {first:10.2f}s {1e3 * statistics.median(times):14.0f}ms "
                  f"{times[-1] / times[0]:19.2f}x")


if __name__ == "__main__":
    main()
