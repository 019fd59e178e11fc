"""Ending runs without losing steps or aborting: Ctrl-C and SIGTERM on the CLI, resumable sweeps, whole-file
landscapes, and a process with training threads that gets SIGTERM."""

import csv
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

LIB = [sys.executable, "-m", "lossviz"]


def _lines(path):
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def _interrupt_when(proc, ready, sig, timeout=120):
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None and time.time() < deadline, "the command ended before it was interrupted"
        time.sleep(0.1)
    proc.send_signal(sig)
    start = time.time()
    _, err = proc.communicate(timeout=30)
    return time.time() - start, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_train_interrupted_keeps_every_finished_step(tmp_path, sig):
    out = tmp_path / "run.csv"
    proc = subprocess.Popen([*LIB, "train", "sparse-penalty", "--steps", "200000", "--out", str(out)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    seconds, err = _interrupt_when(proc, lambda: _lines(out) > 200, sig)
    assert proc.returncode == 130 and seconds < 5
    rows = list(csv.DictReader(out.open()))
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    assert err.strip().splitlines()[-1] == f"interrupted at step {len(rows)}: {len(rows)} rows in {out}"
    assert "Traceback" not in err


# points long enough (one worker runs them one after another) that the interrupt lands with some still to run
SWEEP = ["sweep", "max-mse", "--grid", "lr=0.001,0.01,0.1", "--grid", "variant=neg-mse,neg-lr", "--steps", "3000",
         "--jobs", "1"]


def test_sweep_resume_runs_only_the_missing_points_and_ends_as_an_uninterrupted_sweep(tmp_path):
    whole, part = tmp_path / "whole.csv", tmp_path / "part.csv"
    assert subprocess.run([*LIB, *SWEEP, "--out", str(whole)], cwd=ROOT, capture_output=True, timeout=600).returncode == 0
    proc = subprocess.Popen([*LIB, *SWEEP, "--out", str(part)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    _, err = _interrupt_when(proc, lambda: _lines(part) >= 3, signal.SIGINT)  # header and two points
    assert proc.returncode == 130 and "--resume runs the others" in err
    kept = _lines(part) - 1
    assert 2 <= kept < 6
    resumed = subprocess.run([*LIB, *SWEEP, "--out", str(part), "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0 and f"resuming: {kept} of 6 points already in {part}" in resumed.stderr
    assert part.read_text() == whole.read_text()
    other = subprocess.run([*LIB, *SWEEP[:-4], "--steps", "99", "--out", str(part), "--resume"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and other.stderr.strip().splitlines() == [
        f"lossviz: error: {part} holds another sweep (its steps differ): drop --resume or use another --out"]


def test_landscape_writes_nothing_partial(tmp_path):
    out = tmp_path / "land.csv"
    proc = subprocess.Popen([*LIB, "landscape", "policy-value", "--steps", "100000", "--out", str(out)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    part = tmp_path / "land.csv.part"  # the command opens it before it trains: then it is inside the command
    deadline = time.time() + 120
    while not part.exists():
        assert proc.poll() is None and time.time() < deadline, "the command ended before it was interrupted"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=180)  # a bound against a hang, not a wait: it ends after its chunk, in about a second
    assert proc.returncode == 130
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_a_process_training_in_threads_exits_cleanly_on_sigterm(tmp_path):
    script = (
        "import sys, time\n"
        "from lossviz.shutdown import terminate_as_interrupt\n"
        "from lossviz.jobs import TrainingJob\n"
        "terminate_as_interrupt()\n"
        "jobs = [TrainingJob(demo, {}, None) for demo in ('policy-value', 'sparse-penalty', 'max-mse')]\n"
        "while min(job.trainer.step for job in jobs) < 40:\n"
        "    time.sleep(0.05)\n"
        "try:\n"  # the signal may come as soon as the line is out: be inside the try by then
        "    print('training', flush=True)\n"
        "    while True:\n"
        "        time.sleep(0.1)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    while line and line.strip() != "training":  # TensorFlow may log a line or two first
        line = proc.stdout.readline()
    assert line.strip() == "training"
    proc.send_signal(signal.SIGTERM)
    start = time.time()
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode in (0, 130) and time.time() - start < 5
    assert "terminate called" not in output and "Traceback" not in output
