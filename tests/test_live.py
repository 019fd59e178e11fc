"""Knobs during a run: Trainer.set / at, TrainingJob pause / resume / step / play, the record log and the CLI
replay of a schedule."""

import math
import shlex
import time

import numpy as np
import pytest

from lossviz import links
from lossviz import records as rec
from lossviz import settings as config
from lossviz.cli import main
from lossviz.jobs import TrainingJob
from lossviz.training import Trainer, train


def _same(a, b):
    """Equal record lists, NaN equal to NaN."""
    return len(a) == len(b) and all(
        list(ra) == list(rb) and all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
                                     for x, y in zip(ra.values(), rb.values()))
        for ra, rb in zip(a, b))


def _until(job, step):
    deadline = time.time() + 60
    while job.trainer.step < step:
        assert time.time() < deadline and job.running, "the job did not get there"
        time.sleep(0.005)


def test_set_changes_the_next_steps_and_nothing_before():
    with Trainer("sparse-penalty", {"lr": 0.001}, seed=0) as t:
        before = list(t.run(25, chunk=10))
        t.set(lr=0.02, penalty=40)
        after = list(t.run(15, chunk=10))
    assert all(r["set:lr"] == 0.001 and r["set:penalty"] == 10.0 for r in before)
    assert all(r["set:lr"] == 0.02 and r["set:penalty"] == 40.0 for r in after)
    plain = train("sparse-penalty", {"lr": 0.001}, steps=25)
    assert _same(before, plain)  # nothing before the change moved
    alone = train("sparse-penalty", {"lr": 0.02, "penalty": 40}, steps=15)
    assert after[0]["loss"] != alone[0]["loss"]  # the weights carried over, they were not reset
    assert rec.knob_changes(t.records) == [(26, "lr", 0.001, 0.02), (26, "penalty", 10.0, 40.0)]


def test_every_numeric_knob_is_a_column_and_int_stays_int():
    (r,) = train("two-branch", {"alpha": 0.3}, steps=1)
    assert {k for k in r if k.startswith("set:")} == {"set:lr", "set:batch_size", "set:clipnorm", "set:clipvalue",
                                                      "set:alpha"}
    assert r["set:alpha"] == 0.3 and r["set:batch_size"] == 32 and isinstance(r["set:batch_size"], int)
    (r,) = train("two-branch", {"alpha": "trainable"}, steps=1)
    assert "set:alpha" not in r  # a trainable alpha is a variable, recorded in the alpha column


@pytest.mark.parametrize("demo, knobs, words", [
    ("sparse-penalty", {"variant": "naive"}, "variant shapes the compiled graph"),
    ("sparse-penalty", {"optimizer": "sgd"}, "optimizer shapes the compiled graph"),
    ("policy-value", {"mask": "none"}, "mask shapes the compiled graph"),
    ("two-branch", {"alpha": "trainable"}, "alpha=trainable shapes the compiled graph"),
    ("sparse-penalty", {"positive_rate": 0.1}, "positive_rate shapes the run's data"),
    ("sparse-penalty", {"epsilon": 0.7}, "epsilon must be a number in (0, 0.5)"),
    ("max-mse", {"lr": float("nan")}, "lr must be a finite number"),
    ("max-mse", {"batch_size": 5000}, "batch_size must be an integer"),
    ("max-mse", {"penalty": 3}, "unknown key 'penalty'"),
])
def test_set_refuses_with_the_key_named(demo, knobs, words):
    with Trainer(demo) as t:
        with pytest.raises(ValueError, match=None) as info:
            t.set(**knobs)
        assert words in str(info.value)
        assert t.requested == t.settings  # nothing half-applied


def test_a_trainable_alpha_refuses_a_number_and_a_fixed_one_takes_it():
    with Trainer("two-branch", {"alpha": "trainable"}) as t, pytest.raises(ValueError, match="alpha shapes"):
        t.set(alpha=0.9)
    with Trainer("two-branch", {"alpha": 0.5}) as t:
        list(t.run(3))
        t.set(alpha=0.9)
        (r,) = list(t.run(1))
    assert r["alpha"] == pytest.approx(0.9) and r["set:alpha"] == 0.9
    np.testing.assert_allclose(r["loss"], 0.9 * r["loss:branch_1"] + 0.1 * r["loss:branch_2"], rtol=1e-5)


def test_batch_size_changes_without_a_retrace():
    with Trainer("max-mse") as t:
        list(t.run(5))
        t.set(batch_size=7)
        list(t.run(5))
        assert t.compiled.traces == 1
        assert [r["set:batch_size"] for r in t.records] == [32] * 5 + [7] * 5


def test_at_schedule_equals_set_between_chunks_and_splits_chunks():
    with Trainer("policy-value", {}, seed=2) as t:
        live = list(t.run(13, chunk=5))
        t.set(c=0.01)
        live += list(t.run(7, chunk=5))
    with Trainer("policy-value", {}, seed=2) as t:
        t.at(14, c=0.01)
        replay = list(t.run(20, chunk=20))  # the scheduled step starts a chunk of its own
        with pytest.raises(ValueError, match="already trained"):
            t.at(3, c=0.1)
    assert _same(live, replay)


def test_pause_resume_and_step_equal_an_uninterrupted_run():
    job = TrainingJob("sparse-penalty", {"variant": "clipped"}, steps=None, seed=1, chunk=10)
    _until(job, 30)
    job.pause()
    assert job.status == "paused" and not job.running
    paused_at = job.trainer.step
    job.set(penalty=30.0, lr=0.004)
    job.step(25)
    job.wait()
    assert job.status == "paused" and job.trainer.step == paused_at + 25
    job.play()
    _until(job, paused_at + 60)
    job.stop()
    job.wait()
    assert job.status == "stopped"
    live = list(job.records)
    with Trainer("sparse-penalty", {"variant": "clipped"}, seed=1) as t:
        t.at(paused_at + 1, penalty=30.0, lr=0.004)
        again = list(t.run(len(live)))
    assert _same(live, again)
    assert rec.knob_changes(live) == [(paused_at + 1, "lr", 0.001, 0.004), (paused_at + 1, "penalty", 10.0, 30.0)]


def test_a_job_with_a_budget_finishes_and_can_play_on():
    job = TrainingJob("max-mse", {}, steps=40)
    job.wait()
    assert job.status == "finished" and job.trainer.step == 40
    job.resume()  # nothing left to do
    assert job.trainer.step == 40 and job.status == "finished"
    job.step(5)
    job.wait()
    assert job.trainer.step == 45 and job.status == "paused"


def test_cli_replays_the_live_schedule_bit_for_bit(tmp_path):
    job = TrainingJob("sparse-penalty", {"lr": 0.003}, steps=None, seed=5, start=False)
    job.step(30)
    job.wait()
    job.set(penalty=60.0)
    job.step(17)
    job.wait()
    job.set(lr=0.0005, clipnorm=0.5)
    job.step(33)
    job.wait()
    records = list(job.records)
    changes = [(step, key, new) for step, key, _, new in rec.knob_changes(records)]
    assert [c[0] for c in changes] == [31, 48, 48]
    initial = {**job.trainer.initial_settings, **rec.knobs_of(records[0])}
    command = config.cli_command("sparse-penalty", initial, len(records), 5, changes=changes)
    assert "--at 31:penalty=60.0 --at 48:lr=0.0005 --at 48:clipnorm=0.5" in command
    out = tmp_path / "replay.csv"
    assert main(shlex.split(command)[3:] + ["--out", str(out)]) == 0
    assert out.read_text() == rec.to_csv(records)


def test_record_log_stays_bounded_and_keeps_what_markers_need():
    log = rec.RecordLog(["loss", "nonfinite"], ["lr"], lambda code: ("", ""), max_rows=100, recent=20)
    step = 1
    for chunk in range(60):
        lr = 0.1 if chunk < 25 else 0.2
        values = np.array([[float(step + i), 1.0 if step + i == 7 else 0.0] for i in range(10)], np.float32)
        log.append(step, values, np.zeros(10, np.int32), [lr])
        step += 10
    assert len(log) <= 100 and log.thinned > 0
    assert log.last_step == 600 and [r["step"] for r in log[-20:]] == list(range(581, 601))
    assert log.first_nonfinite()["step"] == 7
    assert rec.knob_changes(log) == [(251, "lr", 0.1, 0.2)]
    steps = [r["step"] for r in log]
    assert steps == sorted(steps) and steps[0] == 1
    assert rec.frame(log).to_dict("records") == list(log)  # the frame drawn is the records handed out


def test_window_is_bounded_and_keeps_changes_and_the_first_nan():
    with Trainer("sparse-penalty", {"variant": "naive", "lr": 0.05}) as t:
        list(t.run(30))
        t.set(lr=0.01)
        list(t.run(3000, chunk=200))
        shown = rec.window(t.records, recent=500, older=100).to_dict("records")
    assert len(shown) < 700
    assert [r["step"] for r in shown[-500:]] == list(range(2531, 3031))
    assert rec.first_nonfinite(shown)["step"] == 3
    assert rec.knob_changes(shown) == [(31, "lr", 0.05, 0.01)]


def test_run_state_round_trips_through_a_query():
    state = links.RunState({**config.defaults("sparse-penalty"), "variant": "naive", "lr": 0.05}, seed=4, steps=90,
                           compare=("penalty", 30.0), schedule=[(11, "lr", 0.005), (40, "penalty", 20.0)],
                           schedule_b=[(50, "penalty", 60.0)])
    query = links.to_query("sparse-penalty", state)
    assert query["at"] == ["11:lr=0.005", "40:penalty=20.0"] and query["variant"] == ["naive"]
    assert links.from_query("sparse-penalty", query) == state
    assert state.b_schedule() == [(11, "lr", 0.005), (50, "penalty", 60.0)]  # B keeps its own penalty


@pytest.mark.parametrize("query, words", [
    ({"lr": ["nan"]}, "lr must be a finite number"),
    ({"os.system": ["id"]}, "unknown key 'os.system'"),
    ({"lr": ["0.1", "0.2"]}, "lr appears 2 times"),
    ({"steps": ["0"]}, "steps must be an integer from 1"),
    ({"compare": ["variant"]}, "compare takes KEY:VALUE"),
    ({"at": ["5:variant=naive"]}, "variant shapes the compiled graph"),
    ({"at": ["50:lr=0.1"], "steps": ["10"]}, "step 50 is past the run's 10 steps"),
    ({"at_b": ["5:lr=0.1"]}, "at_b needs compare"),
    ({"compare": ["lr:0.1"], "at_b": ["5:penalty=3"]}, "at_b changes only the compared setting"),
    ({"lr": ["1" * 2000]}, "more or longer values"),
    ({"at": ["1:lr=0.1"] * 300}, "more or longer values"),
])
def test_a_bad_query_is_refused_in_one_line(query, words):
    with pytest.raises(config.SettingError) as info:
        links.from_query("sparse-penalty", query)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_charts_of_a_run_that_has_not_started():
    """A waiting run has no records and no columns yet: the live charts draw empty, they do not raise."""
    from lossviz import charts

    with Trainer("sparse-penalty") as t:
        empty = rec.window(t.records)
        assert t.records.columns is None and len(empty) == 0
        runs = {"A: defaults": empty}
        for figure in (charts.loss_chart(runs), charts.grad_norm_chart(runs), charts.metrics_chart(runs),
                       charts.layer_heatmap(empty)):
            assert figure.to_json()
        assert rec.describe_first_nonfinite(t.records) is None and rec.knob_changes(t.records) == []
