"""Stability sweeps: rows and columns, statuses, backend- and jobs-independence, CLI, the page section."""

import csv
import math
import subprocess
import sys
import threading
import time

import pytest

from lossviz.scheduler import Scheduler
from lossviz import settings as config, sweep as sweeps
from lossviz.cli import main
from conftest import ROOT

GRIDS = {
    "policy-value": [("mask", ["logits", "none"]), ("c", ["0", "0.01"])],
    "two-branch": [("alpha", ["0.5", "trainable"]), ("lr", ["0.001", "0.01"])],
    "sparse-penalty": [("variant", ["naive", "logits"]), ("lr", ["0.001", "0.05"])],
    "max-mse": [("variant", ["neg-mse", "inverse-mse"]), ("epsilon", ["0", "0.1"])],
}


def _same_rows(a, b):
    def norm(row):
        return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    return [norm(r) for r in a] == [norm(r) for r in b]


@pytest.mark.parametrize("demo", GRIDS)
def test_two_by_two_sweep_gives_four_rows(demo):
    """Each demo's rows and columns (on this process's compiled steps: the process pool has tests of its own)."""
    rows = sweeps.sweep(demo, GRIDS[demo], steps=40, seed=0, jobs=2, backend="threads")
    keys = [k for k, _ in GRIDS[demo]]
    assert len(rows) == 4
    assert [(r[keys[0]], r[keys[1]]) for r in rows] == [(a, b) for a in GRIDS[demo][0][1] for b in GRIDS[demo][1][1]]
    for row in rows:
        assert list(row) == keys + sweeps.summary_columns(demo)
        assert row["status"] in ("ok", "diverged", "stalled") and row["steps"] == 40, row


def test_naive_diverges_at_a_reported_step_and_logits_is_ok():
    rows = sweeps.sweep("sparse-penalty", [("variant", ["naive", "logits"])], base={"lr": "0.05"}, steps=100, jobs=2)
    naive, logits = rows
    assert naive["status"] == "diverged" and naive["first_nonfinite_step"] == 3 and naive["first_nonfinite"] == "loss"
    assert logits["status"] == "ok" and logits["first_nonfinite_step"] == ""
    assert math.isfinite(logits["final_loss"]) and logits["max_grad_norm"] > 0


def test_rows_do_not_depend_on_the_number_of_jobs():
    grid = [("lr", ["0.001", "0.01"]), ("c", ["0.0001", "0.01"])]  # the conv net: thread-count sensitive
    one = sweeps.sweep("policy-value", grid, steps=30, jobs=1)
    two = sweeps.sweep("policy-value", grid, steps=30, jobs=2)
    assert _same_rows(one, two)


def test_summary_statuses():
    base = {"step": 1, "grad_norm": 1.0, "nonfinite": 0, "first_nonfinite": "", "metric:mse": 0.1}
    settings = config.resolve("max-mse", {})
    falling = [{**base, "step": i + 1, "loss": 1.0 - 0.1 * i} for i in range(5)]
    flat = [{**base, "step": i + 1, "loss": 1.0} for i in range(5)]
    assert sweeps.summarise("max-mse", settings, falling)["status"] == "ok"
    assert sweeps.summarise("max-mse", settings, flat)["status"] == "stalled"
    rising = [{**base, "step": i + 1, "loss": 0.1 * i} for i in range(5)]  # neg-lr climbs the loss: progress
    assert sweeps.summarise("max-mse", config.resolve("max-mse", {"variant": "neg-lr"}), rising)["status"] == "ok"
    broken = falling[:2] + [{**base, "step": 3, "loss": math.nan, "nonfinite": 4, "first_nonfinite": "loss"}]
    row = sweeps.summarise("max-mse", settings, broken)
    assert row["status"] == "diverged" and row["first_nonfinite_step"] == 3 and row["best_loss"] == 0.9


def test_a_failing_run_becomes_an_error_row(monkeypatch):
    import lossviz.training

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(lossviz.training, "train", boom)
    row = sweeps.run_point("max-mse", {}, steps=5, seed=0)
    assert row["status"] == "error" and row["message"] == "RuntimeError: out of memory"
    assert list(row) == sweeps.summary_columns("max-mse")


def test_bad_grid_fails_before_training():
    for grids in ([("nope", ["1"])], [("lr", ["1", "nan"])], [("variant", ["naive", "bad"])], [("lr", ["1"]), ("lr", ["2"])]):
        with pytest.raises(config.SettingError):
            sweeps.grid_points("sparse-penalty", grids)


def test_cli_sweep_writes_one_row_per_point(tmp_path):
    out = tmp_path / "sweep.csv"
    code = main(["sweep", "max-mse", "--grid", "variant=neg-mse,neg-lr", "--grid", "lr=0.01,0.1,0.5",
                 "--steps", "30", "--jobs", "2", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and list(rows[0])[:3] == ["variant", "lr", "status"]
    assert "metric:mse" in rows[0] and "first_nonfinite_step" in rows[0]


@pytest.mark.parametrize("args, words", [
    (["--grid", "nope=1,2"], "unknown key 'nope'"),
    (["--grid", "lr=0.1,abc"], "lr=abc is not allowed"),
    (["--grid", "lr="], "needs at least one value"),
    (["--grid", "lr=1", "--grid", "penalty=1", "--grid", "epsilon=0.1"], "one or two --grid"),
    (["--grid", "lr=1", "--backend", "spark"], "invalid choice"),
])
def test_cli_sweep_bad_input_exits_2(args, words, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lossviz", "sweep", "sparse-penalty", *args, "--out",
                           str(tmp_path / "x.csv")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr


class _Gate(Scheduler):
    """A line for a sweep's points that admits the first and holds the others until ``open`` is set, or the sweep
    is stopped: a stop then lands with points still to run, however fast the machine."""

    def __init__(self):
        super().__init__(slots=1)
        self.open = threading.Event()
        self.admitted = 0

    def acquire(self, owner, cancelled=lambda: False) -> bool:
        while self.admitted >= 1 and not self.open.is_set():
            if cancelled():
                return False
            self.open.wait(0.05)
        self.admitted += 1
        return super().acquire(owner, cancelled)


def test_stop_keeps_the_finished_rows():
    gate = _Gate()
    job = sweeps.SweepJob("max-mse", [("lr", ["0.001", "0.01", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6"])],
                          steps=400, seed=0, jobs=1, scheduler=gate)
    deadline = time.time() + 120
    while not job.rows and time.time() < deadline:  # the first point ends; the second waits at the gate
        time.sleep(0.1)
    job.stop()
    gate.open.set()
    assert job.wait(120)
    rows = job.finished_rows()
    assert 1 <= len(rows) < 8 and all(r["status"] != "error" for r in rows)


def test_the_process_pool_has_jobs_workers_and_never_shrinks(monkeypatch):
    """``--jobs 1`` starts one worker (one TensorFlow import); a page's sweep (no jobs) one per core; a pool is
    never shrunk, which would stop workers that have compiled."""
    import joblib.externals.loky as loky

    asked = []
    monkeypatch.setattr(loky, "get_reusable_executor", lambda max_workers, **kwargs: asked.append(max_workers))
    monkeypatch.setattr(sweeps, "_pool_workers", 0)
    for workers in (1, 3, 2):
        sweeps._pool(workers)
    assert asked == [1, 3, 3]


def test_ray_backend_gives_the_same_rows():
    ray = pytest.importorskip("ray")
    grid = [("lr", ["0.001", "0.05"]), ("penalty", ["1", "10"])]  # one structure: a worker compiles once
    base = {"variant": "naive"}  # (lr 0.05 diverges: the NaN rows must match too)
    local = sweeps.sweep("sparse-penalty", grid, base, steps=30, jobs=2)
    assert not ray.is_initialized()
    try:  # lossviz starts a local Ray instance itself (address None), shipping the package to the workers
        remote = sweeps.sweep("sparse-penalty", grid, base, steps=30, jobs=1, backend="ray")
        assert ray.cluster_resources()["CPU"] == 1  # jobs caps the local instance: one worker imports TensorFlow
    finally:
        ray.shutdown()
    assert _same_rows(local, remote) and [r["status"] for r in remote].count("diverged") == 2
