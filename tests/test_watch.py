"""Play for an hour: redraws stay light and paced to what the browser takes in, and no run outlives its page.

The browser side (a CPU-throttled Chromium, a closed tab) is in ``test_browser.py``; here are the parts that can
be checked without one: the pace, the thinned charts, the self-pausing Play and the session reaper.
"""

import time

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from dashboard import pacing, sessions
from lossviz import charts, records
from lossviz.jobs import UNWATCHED, TrainingJob


# ----------------------------------------------------------------------------- the pace


def _paced(steps):
    """Run the pace through (messages behind, seconds since the last redraw, build seconds) per redraw."""
    pace, now, seen = pacing.Pace(), 0.0, []
    for behind, gap, build in steps:
        now += gap
        drew = pace.step(behind, now)
        pace.build = build
        seen.append((pace.interval, drew))
    return seen


def test_a_healthy_browser_keeps_the_fastest_pace():
    assert _paced([(0, 0.5, 0.02)] * 40) == [(0.5, True)] * 40


def test_messages_left_behind_slow_the_pace_one_notch_at_a_time():
    seen = _paced([(0, 0.5, 0.02), (30, 0.5, 0.02), (30, 1.0, 0.02), (30, 2.0, 0.02), (30, 5.0, 0.02)])
    assert [i for i, _ in seen] == [0.5, 1.0, 2.0, 5.0, 5.0]
    assert all(drew for _, drew in seen)


def test_a_fifth_of_the_send_queue_waiting_jumps_to_the_slowest_pace_and_draws_no_charts():
    seen = _paced([(0, 0.5, 0.02), (pacing.TOO_MUCH, 0.5, 0.02), (0, 5.0, 0.02)])
    assert seen == [(0.5, True), (5.0, False), (5.0, True)]
    assert pacing.TOO_MUCH == pacing.SEND_QUEUE_CAP // 5 == 100


def test_a_late_browser_or_a_slow_build_slow_the_pace():
    assert _paced([(0, 0.5, 0.02), (0, 1.5, 0.02)])[-1][0] == 1.0  # asked 1.5 s after a 0.5 s redraw
    assert _paced([(0, 0.5, 0.3), (0, 0.5, 0.3)])[-1][0] == 1.0  # 0.3 s to build: more than a fifth of 0.5 s
    assert _paced([(0, 0.5, 0.3), (0, 0.5, 0.3), (0, 1.0, 0.3)])[-1][0] == 2.0


def test_the_pace_comes_back_after_a_calm_stretch():
    steps = [(0, 0.5, 0.02), (50, 0.5, 0.02)] + [(0, 1.0, 0.02)] * pacing.CALM
    seen = _paced(steps)
    assert seen[1][0] == 1.0 and seen[-2][0] == 1.0 and seen[-1][0] == 0.5
    # a build that would not fit the faster pace keeps the slower one
    assert _paced([(0, 0.5, 0.02), (50, 0.5, 0.15)] + [(0, 1.0, 0.15)] * (3 * pacing.CALM))[-1][0] == 1.0


def test_the_words_say_the_interval_and_what_waits():
    pace = pacing.Pace()
    pace.step(30, 0.0)
    assert pace.words() == "redrawn every 1 s, 30 messages waiting to be sent"
    pace.step(400, 1.0)
    assert pace.words().endswith("charts paused until the browser catches up")


def test_nothing_waits_outside_a_server():
    assert pacing.waiting() == 0


# ----------------------------------------------------------------------------- lighter redraws


def test_thinning_keeps_spikes_and_gaps_in_compact_arrays():
    x = np.arange(1, 30_001)
    y = np.sin(x / 500.0)
    y[12_345] = 40.0  # one spike
    y[20_000:20_050] = np.nan  # a gap
    tx, ty = charts.thin(x, y, 800)
    assert len(tx) <= 800 and tx.dtype == np.int32 and ty.dtype == np.float32
    assert 12_346 in tx and np.nanmax(ty) == 40.0
    assert np.isnan(ty).any()
    assert np.array_equal(tx, np.sort(tx))
    short_x, short_y = charts.thin(x[:100], y[:100], 800)
    assert np.array_equal(short_x, x[:100]) and np.allclose(short_y, y[:100])


def test_a_piecewise_constant_metric_keeps_its_changes_only():
    x = np.arange(1, 101)
    y = np.repeat([0.1, 0.5, np.nan, 0.5], 25)
    kx, ky = charts._steps_only(x, y)
    assert kx.tolist() == [1, 26, 51, 76, 100]
    assert np.allclose(ky[[0, 1, 3, 4]], [0.1, 0.5, 0.5, 0.5]) and np.isnan(ky[2])


def test_the_heatmap_keeps_each_stretch_s_largest_column():
    values = np.ones((3, 10_000))
    values[1, 4321] = 1e6
    cols = charts._spikiest_columns(values, 500)
    assert len(cols) == 500 and 4321 in cols


def test_knob_changes_are_the_changed_rows_and_the_rows_before():
    lr = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.3])
    c = np.array([1.0, 1.0, 1.0, 5.0, 5.0, 5.0])
    assert records.changed_rows([lr, c]) == [1, 2, 3, 4, 5]
    assert records.changed_rows([lr[:3]]) == [1, 2]
    assert records.changed_rows([np.full(4, np.nan)]) == []  # an empty knob in every row never changes
    assert records.changed_rows([np.array(["a", "a", "b"], dtype=object)]) == [1, 2]
    assert records.changed_rows([]) == [] and records.changed_rows([lr[:1]]) == []
    # the chart markers agree: a CSV's empty knob column marks no change, a real one marks its step
    table = pd.DataFrame({"step": [1, 2, 3], "set:c": [np.nan] * 3, "set:lr": [0.1, 0.1, 0.2]})
    assert records.knob_changes(table) == [(3, "lr", 0.1, 0.2)]


def test_compact_moves_kept_rows_to_the_front_in_place():
    a, b = np.arange(6.0), np.arange(12).reshape(6, 2)
    keep = np.array([True, False, True, False, False, True])
    assert records.compact([a, b], keep) == 3
    assert a[:3].tolist() == [0.0, 2.0, 5.0] and b[:3].tolist() == [[0, 1], [4, 5], [10, 11]]


def _long_log(n: int, nan_from: int | None = None) -> records.RecordLog:
    cols = ["loss", "loss:a", "grad_norm", "grad_norm:d1", "grad_norm:d2", "nonfinite", "metric:m",
            "grad_norm@a", "grad_norm@b", "grad_norm@a:d1", "grad_norm@a:d2", "grad_norm@b:d1", "grad_norm@b:d2",
            "cos:a|b"]
    log = records.RecordLog(cols, ["lr"], lambda code: ("loss", "loss") if code else ("", ""))
    rng = np.random.default_rng(0)
    values = rng.random((n, len(cols))).astype(np.float32)
    values[:, cols.index("nonfinite")] = 0
    codes = np.zeros(n, np.int32)
    if nan_from is not None:
        values[nan_from:, 0] = np.nan
        values[nan_from:, cols.index("nonfinite")] = 1
        codes[nan_from:] = 1
    for start in range(0, n, 1000):
        log.append(start + 1, values[start:start + 1000], codes[start:start + 1000], [0.001])
    return log


def _bytes(figures) -> int:
    return sum(len(pio.to_json(f, validate=False)) for f in figures.values())


def test_a_redraw_weighs_the_same_after_a_long_run_and_stays_small():
    short = _bytes(charts.live_figures({"A": records.window(_long_log(3_000))}, every=10))
    long = _bytes(charts.live_figures({"A": records.window(_long_log(60_000))}, every=10))
    broken = _bytes(charts.live_figures({"A": records.window(_long_log(60_000, nan_from=5))}, every=10))
    assert long < 1.2 * short and short < 100_000  # every point of the window: ~250 KB
    assert broken < 150_000  # every step marked non-finite: the red crosses are thinned too


# ----------------------------------------------------------------------------- no run without a watcher


def _until(condition, seconds=60.0):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


class _Clock:
    """The job's clock, moved by the test: "nobody has watched for a second" whatever the machine's load."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_play_nobody_watches_pauses_itself_and_play_goes_on():
    clock = _Clock()
    job = TrainingJob("max-mse", {}, None, start=False)
    job.clock, job.unwatched_seconds = clock, 1.0
    job.play()
    _until(lambda: job.trainer.step > 0)
    clock.now += 2.0  # nobody has drawn it for two seconds
    _until(lambda: not job.running)
    assert job.status == f"paused: {UNWATCHED}" and job.paused and job.trainer.step > 0
    stopped_at = job.trainer.step
    job.play()  # a page came back
    _until(lambda: job.trainer.step > stopped_at)
    for _ in range(10):  # a page that keeps drawing every half second keeps it going, chunk after chunk
        step = job.trainer.step
        job.watched()
        clock.now += 0.5
        _until(lambda: job.trainer.step > step)
    assert job.running and job.status == "running"
    clock.now += 2.0
    _until(lambda: not job.running)
    assert job.status == f"paused: {UNWATCHED}"


def test_a_train_with_a_budget_finishes_it_unwatched():
    job = TrainingJob("max-mse", {}, 300)
    job.unwatched_seconds = 0.0
    job.wait(120)
    assert job.status == "finished" and job.trainer.step == 300


def test_a_gone_session_s_runs_are_stopped(monkeypatch):
    """The reaper: a session without a connection for the grace is stopped, a connected one is left alone."""
    from streamlit.runtime import Runtime

    class FakeRuntime:
        active = {"here"}

        def is_active_session(self, session_id):
            return session_id in self.active

    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(FakeRuntime))
    monkeypatch.setattr(sessions, "CHECK_SECONDS", 0.05)
    monkeypatch.setattr(sessions, "GRACE_SECONDS", 0.3)
    gone = TrainingJob("max-mse", {}, None)
    here = TrainingJob("max-mse", {}, None)
    try:
        monkeypatch.setitem(sessions._WATCHED, "gone", ({"max-mse": {"A": gone}}, {}))
        monkeypatch.setitem(sessions._WATCHED, "here", ({"max-mse": {"A": here}}, {}))
        if sessions._THREAD is None:
            sessions._THREAD = sessions.threading.Thread(target=sessions._reap, daemon=True)
            sessions._THREAD.start()
        _until(lambda: not gone.running)
        assert gone.status == "stopped" and "gone" not in sessions._WATCHED
        assert here.running
    finally:
        here.stop()
        gone.stop()
        here.wait(30)
