"""One compiled step per structure, shared by every run: the same records whether one run or sixteen share it,
the optimizers against Keras', the XLA fallback, the warm-up, and the job's "preparing the trainer"."""

import os
import threading
import time
from collections import OrderedDict

import keras
import numpy as np
import pytest
import tensorflow as tf

from lossviz import data, demos, optimizers, step, training
from lossviz.jobs import PREPARING, TrainingJob
from lossviz.scheduler import Scheduler
from test_live import _same


@pytest.mark.parametrize("demo, settings", [("policy-value", {}), ("sparse-penalty", {"variant": "naive", "lr": 0.05}),
                                            ("two-branch", {"alpha": "gradnorm"})])
def test_sixteen_runs_at_once_give_the_records_of_each_alone(demo, settings):
    """Sixteen jobs call the one step together, from their own threads (sixteen slots: none waits); each run's
    records equal the same run trained alone, bit for bit."""
    seeds = [s % 4 for s in range(16)]  # runs of the same seed at once, too
    jobs = [TrainingJob(demo, settings, 60, seed=s, scheduler=Scheduler(slots=16), chunk=7) for s in seeds]
    for job in jobs:
        job.wait(300)
    alone = {s: training.train(demo, settings, steps=60, seed=s) for s in set(seeds)}
    for job, seed in zip(jobs, seeds):
        assert job.error is None and len(job.records) == 60
        assert _same(list(job.records), alone[seed])
    assert len({id(job.trainer.compiled) for job in jobs}) == 1


@pytest.mark.parametrize("name, keras_optimizer", [("adam", keras.optimizers.Adam), ("sgd", keras.optimizers.SGD),
                                                   ("rmsprop", keras.optimizers.RMSprop)])
def test_the_pure_optimizers_compute_what_keras_computes(name, keras_optimizer):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    variables = [keras.Variable(v) for v in start]
    theirs = keras_optimizer(learning_rate=0.01)
    theirs.build(variables)
    mine = optimizers.OPTIMIZERS[name]
    params, slots = [tf.constant(v) for v in start], [tf.constant(s) for s in mine.init(shapes)]
    for iteration in range(5):
        grads = [tf.constant(rng.standard_normal(s).astype(np.float32)) for s in shapes]
        theirs.apply(grads, variables)
        params, slots = mine.update(grads, params, slots, tf.constant(0.01), tf.constant(iteration, tf.int64))
        for v, p in zip(variables, params):
            np.testing.assert_array_equal(v.numpy(), p.numpy())


def _numpy_terms(ctx):
    total = keras.ops.mean(keras.ops.square(ctx.out["y"] - ctx.targets["y"]))
    # a numpy function: TensorFlow runs it, XLA cannot compile it
    doubled = tf.numpy_function(lambda v: np.float32(2.0) * v, [total], tf.float32, stateful=False)
    return {}, tf.reshape(doubled, ()) / 2.0


def test_a_structure_xla_cannot_compile_keeps_the_plain_step_and_says_why(monkeypatch):
    monkeypatch.setattr(step, "XLA", True)
    base = demos.DEMOS["max-mse"]
    monkeypatch.setitem(demos.DEMOS, "max-mse", demos.Demo(
        name="max-mse", build=base.build, make_data=base.make_data, terms=_numpy_terms, metrics=base.metrics,
        term_names=(), metric_names=base.metric_names, numeric_keys=base.numeric_keys, params=base.params))
    monkeypatch.setattr(step, "_STEPS", OrderedDict())
    with training.Trainer("max-mse", {}) as t:
        records = list(t.run(30))
    assert not t.compiled.xla and t.compiled.xla_error, t.compiled.xla_error
    assert len(records) == 30 and all(np.isfinite(r["loss"]) for r in records)
    with training.Trainer("max-mse", {}) as again:  # the structure's choice holds for every later run
        assert _same(list(again.run(30)), records)


def test_warm_compiles_the_default_structures_once(monkeypatch):
    monkeypatch.setattr(step, "_STEPS", OrderedDict())
    seconds = training.warm(["max-mse"])
    assert seconds["max-mse"] > 0
    with training.Trainer("max-mse", {"lr": 0.05}, seed=3) as t:
        assert t.ready  # compiled before this run existed
        list(t.run(20))
        assert t.compiled.traces == 1


def test_a_job_says_preparing_while_its_step_compiles(monkeypatch):
    """The step's first call (its compile) is held until the test has read the status, so however fast the machine
    compiles, the status is read while it prepares."""
    monkeypatch.setattr(step, "_STEPS", OrderedDict())
    release = threading.Event()
    first_call = step.Step._first_call

    def held(self, *args, **kwargs):
        release.wait(60)
        return first_call(self, *args, **kwargs)

    monkeypatch.setattr(step.Step, "_first_call", held)
    job = TrainingJob("max-mse", {"optimizer": "rmsprop"}, 40, scheduler=Scheduler(slots=2))
    seen = set()
    while job.running and PREPARING not in seen:
        seen.add(job.status)
        time.sleep(0.01)
    release.set()
    assert job.wait(120)
    assert PREPARING in seen and job.status == "finished"


def test_the_state_is_one_vector_and_parts_round_trip():
    compiled = step.get(demos.get_demo("two-branch"), training.Trainer("two-branch", {"alpha": "uncertainty"}).settings)
    state = compiled.initial_state(0)
    trained, fixed, slots, carried = state.parts()
    assert [v.shape for v in trained] == [tuple(v.shape) for v in compiled.trained]
    assert len(slots) == 2 * len(trained)  # Adam: two slots a variable
    assert len(state.values) == sum(v.size for part in (trained, fixed, slots) for v in part) + len(carried)
    moved = state.with_trained([v + 1 for v in trained])
    np.testing.assert_array_equal(moved.trained[0], trained[0] + 1)
    np.testing.assert_array_equal(moved.parts()[2][0], slots[0])


def test_many_threads_trace_one_structure_once(monkeypatch):
    """A room pressing Train together on a cold structure: one trace, one compile per batch size."""
    monkeypatch.setattr(step, "_STEPS", OrderedDict())
    trainers = [training.Trainer("max-mse", {"lr": 0.01 * (i + 1)}, seed=i) for i in range(6)]
    threads = [threading.Thread(target=t.advance, args=(40,)) for t in trainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert all(t.step == 40 for t in trainers)
    assert trainers[0].compiled.traces == 1 and len({id(t.compiled) for t in trainers}) == 1


@pytest.mark.parametrize("demo", ["policy-value", "two-branch", "sparse-penalty", "max-mse", "custom"])
def test_each_family_compiles_with_xla_and_gives_the_plain_steps_records(demo, monkeypatch):
    """The suite runs the plain step (tests/conftest.py); the dashboard and the CLI run XLA. Each built-in family's
    default structure compiles with XLA and trains as the plain step does: same columns, finite where it is, and
    numbers equal but for XLA's rounding."""
    runs = {}
    for xla in (False, True):
        monkeypatch.setattr(step, "XLA", xla)
        monkeypatch.setattr(step, "_STEPS", OrderedDict())  # a step of its own for each
        with training.Trainer(demo, {}, seed=1) as t:
            runs[xla] = list(t.run(12))
            assert t.compiled.xla is xla and t.compiled.xla_error is None
    plain, compiled = runs[False], runs[True]
    assert [list(r) for r in plain] == [list(r) for r in compiled]
    for a, b in zip(plain, compiled):
        for key, x in a.items():
            if isinstance(x, float):
                assert b[key] == pytest.approx(x, rel=1e-3, abs=1e-5, nan_ok=True), (key, a["step"])
            else:
                assert b[key] == x, key


_TRACE_IN_A_ROOM = """
import hashlib, sys, threading
from lossviz.training import Trainer
trainer = Trainer("max-mse", {})
busy = threading.Event(); done = threading.Event()
def make_tensors():  # another session's tensors: each takes a number from TensorFlow's counter
    import tensorflow as tf
    while not done.is_set():
        tf.constant([1.0]) + 1.0
        busy.set()
if sys.argv[1] == "room":
    threading.Thread(target=make_tensors, daemon=True).start()
    busy.wait()
trainer.advance(1)
done.set()
fn = trainer.compiled._fn
print(fn.name.decode(), hashlib.sha1(fn.graph.as_graph_def().SerializeToString(deterministic=True)).hexdigest())
"""


def test_a_structure_traced_while_other_threads_make_tensors_gets_the_names_it_gets_alone():
    """XLA's disk cache keys a compiled step by the names of its traced functions (``tracenames``): a structure
    traced in a busy process (a classroom pressing Train at once) must find what it compiled alone."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout (lossviz is not installed)
    runs = [subprocess.Popen([sys.executable, "-c", _TRACE_IN_A_ROOM, case], stdout=subprocess.PIPE, text=True,
                             cwd=root, env={**os.environ, "LOSSVIZ_XLA_CACHE": ""}) for case in ("alone", "room")]
    alone, room = (r.communicate(timeout=300)[0].strip().splitlines()[-1] for r in runs)
    assert alone == room and alone.startswith("__inference_run_")


def test_a_jobs_first_call_trains_one_step_then_chunks():
    """A run's first record comes after one step (``jobs.FIRST_CHUNK``), then it trains chunk after chunk."""
    job = TrainingJob("max-mse", {}, steps=50, start=False, chunk=20)
    sizes = []
    advance = job.trainer.advance

    def spy(steps, chunk=20, should_stop=None):
        sizes.append(steps)
        return advance(steps, chunk, should_stop)
    job.trainer.advance = spy
    job.resume()
    job.wait()
    assert sizes == [1, 20, 20, 9] and job.trainer.step == 50
    alone = training.train("max-mse", {}, steps=50)
    assert _same(job.records.take(range(50)), alone)
