"""How much the live page's redraws slow training: steps/s of a background training job alone, and with a
second thread that rebuilds and serialises every chart of the page every REDRAW_SECONDS (what the page's
fragment does while a run trains).

    python benchmarks/live_redraw.py [--steps 3000]

Aim: redraws cost training less than a fifth (ratio >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import charts  # noqa: E402
from lossviz.training import TrainingJob  # noqa: E402

REDRAW_SECONDS = 0.5  # as dashboard.REDRAW_SECONDS (not imported: it would import streamlit)


def draw_page(records) -> int:
    runs = {"A": list(records)}
    figures = [charts.loss_chart(runs), charts.grad_norm_chart(runs), charts.metrics_chart(runs),
               charts.layer_heatmap(runs["A"])]
    return sum(len(f.to_json()) for f in figures)


def timed_run(demo: str, steps: int, redraw: bool) -> tuple[float, int]:
    warm = TrainingJob(demo, {}, 40)
    warm.wait()
    job = TrainingJob(demo, {}, steps)
    draws = 0
    start = time.perf_counter()
    while job.running:
        if redraw:
            draw_page(job.records)
            draws += 1
        time.sleep(REDRAW_SECONDS if redraw else 0.01)
    elapsed = time.perf_counter() - start
    return len(job.records) / elapsed, draws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10000)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, redraw every {REDRAW_SECONDS}s, {args.steps} steps")
    for demo in ("sparse-penalty", "policy-value"):
        alone, _ = timed_run(demo, args.steps, redraw=False)
        drawn, draws = timed_run(demo, args.steps, redraw=True)
        print(f"{demo:16s} alone {alone:6.0f} steps/s   with redraws {drawn:6.0f} steps/s ({draws} redraws)   "
              f"ratio {drawn / alone:.2f}")


if __name__ == "__main__":
    main()
