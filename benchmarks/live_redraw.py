"""How much the live page's redraws slow training, what a redraw weighs, and whether it gets slower or heavier as
the history grows.

Two cases, each run alone and with a second thread that rebuilds and serialises every chart of the page every
REDRAW_SECONDS from a bounded window of the records (what the page's fragment does while a run trains):

- train: a background job of ``--steps`` steps (the Train button);
- play: a job with no step budget (the Play button), a knob change every 500 steps (lr and penalty / c
  alternate), stopped after ``--play-steps`` steps. It also prints how many steps each change took to reach the
  run (at most one chunk) and the redraw time per frame early and late in the run (flat: the charts draw a
  bounded window, whatever the history).

What a redraw sends: the bytes of its figures as Streamlit serialises them (``plotly.io.to_json``), and its
messages (one per element the live section draws: a status line per run, each chart, the anatomy heading, the
pace caption, the column blocks), before (every point of the window, plotly's default template, float64, as the
page drew them until issue 21) and after (thinned to the charts' widths, a lean template, float32).

    python benchmarks/live_redraw.py [--steps 10000] [--play-steps 5000]

Aim: redraws cost training less than a fifth (ratio >= 0.8); the per-frame time and weight do not grow.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import charts, records  # noqa: E402
from lossviz.jobs import TrainingJob  # noqa: E402
from lossviz.training import DEFAULT_CHUNK, Trainer  # noqa: E402

import numpy as np  # noqa: E402
import plotly.io as pio  # noqa: E402

REDRAW_SECONDS = 0.5  # the page's fastest pace (dashboard.pacing.LADDER; not imported: it imports streamlit)
EVERY = 10  # the per-term gradient probe's default period (settings.TERM_GRADS_DEFAULT)
KNOBS = {"sparse-penalty": [{"lr": 0.002}, {"penalty": 30.0}, {"lr": 0.001}, {"penalty": 10.0}],
         "policy-value": [{"lr": 0.002}, {"c": 1e-3}, {"lr": 0.001}, {"c": 1e-4}]}


def draw_page(job_records) -> float:
    """Build and serialise the live charts of one run as the page does; return the seconds it took."""
    start = time.perf_counter()
    figures = charts.live_figures({"A": records.window(job_records)}, EVERY)
    sum(len(pio.to_json(f, validate=False)) for f in figures.values())
    return time.perf_counter() - start


def _as_before(figure) -> None:
    """A figure as the page drew it before issue 21: plotly's default template, float64 and int64 arrays."""
    figure.update_layout(template="plotly")
    for trace in figure.data:
        for axis in ("x", "y", "z"):
            values = getattr(trace, axis, None)
            if isinstance(values, np.ndarray) and values.dtype.kind in "fi":
                setattr(trace, axis, values.astype(np.float64 if values.dtype.kind == "f" else np.int64))


def weight(runs: dict, thinned: bool) -> tuple[int, int]:
    """(bytes, messages) of one redraw of ``runs`` (label -> records); ``thinned=False``: as before issue 21."""
    figures = charts.live_figures({label: records.window(r) for label, r in runs.items()}, EVERY, thinned=thinned)
    if not thinned:
        for figure in figures.values():
            _as_before(figure)
    size = sum(len(pio.to_json(f, validate=False)) for f in figures.values())
    # a status line per run, the charts, the anatomy heading, the pace caption, two blocks of two columns
    messages = len(runs) + len(figures) + ("term_grad_chart" in figures) + 1 + 2 * 3
    return size, messages


def redraw_weight(demo: str, steps: int = 4000) -> str:
    """Bytes and messages per redraw of one run and of a compared pair, before and after thinning."""
    with Trainer(demo, {}) as a, Trainer(demo, {"lr": 2e-3}) as b:
        list(a.run(steps))
        list(b.run(steps))
        parts = []
        for runs in ({"A": a.records}, {"A": a.records, "B": b.records}):
            (before, messages), (after, _) = weight(runs, False), weight(runs, True)
            parts.append(f"{len(runs)} run{'s' if len(runs) > 1 else ''}: {before / 1024:.0f} KiB -> "
                         f"{after / 1024:.0f} KiB ({before / after:.1f}x lighter), {messages} messages")
    return f"{demo:15s} one redraw at step {steps:,}: " + "; ".join(parts)


def _turn_knobs(job: TrainingJob, demo: str, until: int, every: int, asked: list[tuple[int, str, float]]) -> None:
    """Every ``every`` steps, change a knob (as a person moving a slider would, from another thread)."""
    next_change, i = every, 0
    while job.running:
        step = job.trainer.step
        if next_change <= step < until:
            knobs = KNOBS[demo][i % len(KNOBS[demo])]
            job.set(**knobs)
            asked.append((step, *next(iter(knobs.items()))))
            i, next_change = i + 1, next_change + every
        time.sleep(0.005)


def _lags(job: TrainingJob, asked: list[tuple[int, str, float]]) -> list[int]:
    """Steps between each change asked for and its first record, read from the run's records."""
    changes = records.knob_changes(job.records)
    return [min(s for s, k, _, v in changes if k == key and v == value and s > at) - at - 1
            for at, key, value in asked]


def timed(demo: str, steps: int, redraw: bool, play: bool) -> dict:
    warm = TrainingJob(demo, {}, 40)
    warm.wait()
    job = TrainingJob(demo, {}, None if play else steps)
    asked: list[tuple[int, str, float]] = []
    turner = threading.Thread(target=_turn_knobs, args=(job, demo, steps, 500, asked)) if play else None
    if turner:
        turner.start()
    frames: list[tuple[int, float]] = []
    start = time.perf_counter()
    while job.running and job.trainer.step < steps:
        if redraw:
            frames.append((job.trainer.step, draw_page(job.records)))
        time.sleep(REDRAW_SECONDS if redraw else 0.01)
    elapsed = time.perf_counter() - start
    done = job.trainer.step
    job.stop()
    job.wait()
    if turner:
        turner.join()
    return {"rate": done / elapsed, "frames": frames, "lags": _lags(job, asked)}


def frame_time_by_history(demo: str, sizes=(3_000, 30_000, 100_000, 400_000)) -> str:
    """Redraw time for a run's log of each size (the log of a real 500-step run, repeated, with a knob change
    every 500 steps; past 100,000 records the log thins its older part)."""
    with Trainer(demo, {}) as t:
        list(t.run(500))
        sample = t.records
        values = np.stack([sample._values[i] for i in range(len(sample))])
        codes = np.zeros(len(values), np.int32)
        knobs = [float(t.settings[k]) for k in t.knobs]
        lr = t.knobs.index("lr")
        parts = []
        log = records.RecordLog(sample.columns, sample.knobs, sample.decode)
        for size in sizes:
            while log.last_step < size:
                knobs[lr] = 0.002 if (log.last_step // 500) % 2 else 0.001
                log.append(log.last_step + 1, values, codes, knobs)
            cost = min(draw_page(log) for _ in range(3))
            parts.append(f"{size:,} steps ({len(log):,} kept): {1000 * cost:.0f} ms")
    return f"{demo:15s} redraw by history: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--play-steps", type=int, default=5000)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, redraw every {REDRAW_SECONDS}s, chunk {DEFAULT_CHUNK} steps")
    for demo in ("sparse-penalty", "policy-value"):
        print(redraw_weight(demo), flush=True)
    for demo in ("sparse-penalty", "policy-value"):
        print(frame_time_by_history(demo), flush=True)
    for demo in ("sparse-penalty", "policy-value"):
        for case, steps, play in (("train", args.steps, False), ("play", args.play_steps, True)):
            alone = timed(demo, steps, redraw=False, play=play)
            drawn = timed(demo, steps, redraw=True, play=play)
            frames = drawn["frames"]
            line = (f"{demo:15s} {case:5s} {steps} steps: alone {alone['rate']:6.0f} steps/s, with redraws "
                    f"{drawn['rate']:6.0f} steps/s ({len(frames)} redraws), ratio {drawn['rate'] / alone['rate']:.2f}")
            if len(frames) >= 6:
                early = sum(t for _, t in frames[1:4]) / 3
                late = sum(t for _, t in frames[-3:]) / 3
                line += (f"; frame {1000 * early:.0f} ms at step ~{frames[2][0]}, {1000 * late:.0f} ms at step "
                         f"~{frames[-2][0]}")
            if play:
                lags = alone["lags"] + drawn["lags"]
                line += f"; {len(lags)} knob changes reached the run within {max(lags, default=0)} steps (chunk {DEFAULT_CHUNK})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
