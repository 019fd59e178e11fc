"""A step-by-step trainer on a compiled ``GradientTape`` step that yields one plain record per step.

Speed: several steps are fused in one ``tf.function`` call (a ``tf.while_loop``), every probe (terms,
global and per-layer gradient norms, non-finite counts and their place, alpha, metrics) is computed
inside it and stacked into one float vector per step, and a chunk of records is fetched in one go.

Reproducibility: weights, data and batch order come from seeded numpy generators, steps run strictly in
order, and sums of many terms use ``reduce_sum`` (``add_n`` adds in no fixed order), so the same seed and
settings give the same records, bit for bit.

Memory: building a model and tracing a step per run leaks (see PITFALLS), so built *engines* (model,
optimizer, traced step) are pooled per graph-shaping settings and reset for each run: weights from
``np.random.default_rng(seed)``, optimizer slots zeroed. An engine serves one trainer at a time, so
two browser sessions never share weights.

A record is a flat dict whose keys are the CSV columns: ``step``, ``loss``, ``loss:<term>``,
``grad_norm``, ``grad_norm:<layer>``, ``nonfinite``, ``first_nonfinite``, ``nonfinite_in``, ``alpha``
(two-branch only), ``metric:<name>``, and with the per-term gradient probe (``term_grads``, see ``gradients``)
``grad_norm@<term>``, ``grad_norm@<term>:<layer>``, ``cos:<term_a>|<term_b>``.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow as tf
import keras

from . import demos, gradients, models, records, settings as config, shutdown
from .scheduler import SCHEDULER, Scheduler
from .data import Dataset

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
EVAL_SIZE = 1024
EVAL_EVERY = 10  # held-out metrics are measured at step 1 and every EVAL_EVERY steps; records carry the latest
DEFAULT_CHUNK = 20
SLICE_SECONDS = 0.25  # a run holds its slot this long when the runs waiting for one have all trained before
MAX_SNAPSHOTS = 200
# A Play run (no step budget) that no page has drawn for this long pauses itself: a closed or forgotten tab
# leaves no endless run behind. LOSSVIZ_UNWATCHED_SECONDS shortens it (the tests do).
UNWATCHED_SECONDS = float(os.environ.get("LOSSVIZ_UNWATCHED_SECONDS", "60"))
UNWATCHED = "nobody is watching"


@dataclass
class Layout:
    """Names of the entries of a step's float vector, and of the places a non-finite value can appear."""

    terms: tuple[str, ...]
    layers: tuple[str, ...]
    metrics: tuple[str, ...]
    has_alpha: bool
    variables: tuple[str, ...]
    probe_terms: tuple[str, ...] = ()  # the terms whose own gradients are measured (empty: probe off)

    @property
    def columns(self) -> list[str]:
        return (["loss"] + [f"loss:{t}" for t in self.terms] + ["grad_norm"]
                + [f"grad_norm:{name}" for name in self.layers] + ["nonfinite"]
                + (["alpha"] if self.has_alpha else []) + self.carried)

    @property
    def carried(self) -> list[str]:
        """The columns measured on some steps only and carried in between: the metrics, the per-term probe."""
        return [f"metric:{m}" for m in self.metrics] + gradients.columns(self.probe_terms, self.layers)

    def place(self, code: int) -> tuple[str, str]:
        """Decode the step's non-finite place code into (weight name or "loss", "loss"|"gradient"|"weight")."""
        n = len(self.variables)
        if code == 0:
            return "", ""
        if code == 1:
            return "loss", "loss"
        if code < 2 + n:
            return self.variables[code - 2], "gradient"
        return self.variables[code - 2 - n], "weight"


class Engine:
    """One built model with its extra variables (alpha, log-variances, GradNorm's state), optimizer and traced
    fused step."""

    def __init__(self, demo: demos.Demo, settings: Mapping[str, Any]):
        self.demo = demo
        self.key = config.structure(demo.name, settings)
        # only the graph-shaping settings (mask, variant, alpha mode, optimizer, probe): numbers reach the step
        # as tensors, so no number of the run that built this engine can leak into a later run
        self.settings = dict(self.key[1:])
        self.model = demo.build(self.settings)
        trained = demo.extra_variables(self.settings)
        self.extra_init = {**trained, **demo.extra_state(self.settings)}
        self.extra = {name: keras.Variable(np.float32(v), name=name) for name, v in self.extra_init.items()}
        trained_extra = [self.extra[name] for name in trained]
        self.variables = list(self.model.trainable_weights) + trained_extra
        self.optimizer = OPTIMIZERS[self.settings["optimizer"]](learning_rate=1e-3)
        self.optimizer.build(self.variables)
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(self.model.trainable_weights):
            groups.setdefault(models.layer_of(w), []).append(i)
        offset = len(self.model.trainable_weights)
        for j, name in enumerate(trained):  # alpha, or the two log-variances, each a group of its own
            groups[name] = [offset + j]
        self.groups = groups
        # "pcgrad" | "gradnorm": the update is built from the terms' own gradients
        self.weighting = self.settings.get("alpha") if self.settings.get("alpha") in ("pcgrad", "gradnorm") else None
        self.probe = self.settings.get("term_grads", "off") if len(demo.term_names) > 1 else "off"
        self.layout = Layout(
            terms=demo.term_names, layers=tuple(groups), metrics=demo.metrics_of(self.settings),
            has_alpha=demo.alpha is not None, variables=tuple(v.path for v in self.variables),
            probe_terms=demo.term_names if self.probe != "off" else ())
        self._fused = None
        self._read = self._write = None  # the compiled state swap, built on first use

    # -- per run --------------------------------------------------------------------------------------

    def reset(self, seed: int, lr: float) -> None:
        models.initialize(self.model, seed)
        for name, v in self.extra.items():
            v.assign(np.float32(self.extra_init[name]))
        for v in self.optimizer.variables:
            v.assign(tf.zeros(v.shape, v.dtype))
        self.optimizer.learning_rate = lr

    def weights(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self.variables]

    def _state_variables(self) -> list:
        return list(self.model.weights) + list(self.extra.values()) + list(self.optimizer.variables)

    def state(self) -> list[np.ndarray]:
        """Everything the next step depends on: every model weight, the extra variables, the optimizer's
        (iterations, learning rate, slots); read in one compiled call (a run is swapped out between chunks)."""
        if self._read is None:
            variables = self._state_variables()
            self._read = tf.function(lambda: [tf.identity(v.value) for v in variables])
        return [np.array(t) for t in self._read()]

    def load_state(self, values: list[np.ndarray]) -> None:
        if self._write is None:
            variables = self._state_variables()

            def write(values):
                for v, value in zip(variables, values):
                    v.assign(value)

            self._write = tf.function(write, input_signature=[[tf.TensorSpec(v.shape, v.dtype) for v in variables]])
        self._write(list(values))

    def set_weights(self, values) -> None:
        for v, value in zip(self.variables, values):
            v.assign(value)

    # -- the compiled step ----------------------------------------------------------------------------

    def loss_and_terms(self, inputs, targets, hp):
        """Forward pass: (total loss, dict of terms, outputs). Used in the step and by the landscapes."""
        out = self.model(inputs, training=True)
        terms, total = self.demo.terms(self.model, out, (inputs, targets), hp, self.extra, self.settings)
        return total, terms, out

    def _gradients(self, tape, target) -> list:
        grads = tape.gradient(target, self.variables)
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]

    def _term_gradients(self, inputs, targets, hp) -> dict[str, list]:
        """Each term's gradient, on a forward pass of its own (the probe on the steps it measures)."""
        with tf.GradientTape(persistent=True) as tape:
            _, terms, _ = self.loss_and_terms(inputs, targets, hp)
            parts = self.demo.parts_of(terms, hp, self.extra, self.settings)
        grads = {name: self._gradients(tape, parts[name]) for name in self.demo.term_names}
        del tape
        return grads

    def _weighted(self, term_grads: dict[str, list], terms, hp) -> tuple[list, list]:
        """The update of a weighting mode from the terms' gradients, and the assignments to make after it."""
        grads = list(term_grads.values())
        if self.weighting == "pcgrad":
            return gradients.pcgrad(grads), []
        # GradNorm: the parts are w_i L_i / 2, so |grad_W L_i| = 2 |grad_W part_i| / w_i on the shared layer W
        part_norms = tf.stack([gradients.norms(g, self.groups)[1][self.demo.shared_layer] for g in grads])
        e = self.extra
        weights = tf.stack([tf.reshape(e["gradnorm_w1"], ()), tf.reshape(e["gradnorm_w2"], ())])
        losses = tf.stack([tf.reshape(terms[t], ()) for t in self.demo.term_names])
        initial = tf.stack([tf.reshape(e["gradnorm_l0_1"], ()), tf.reshape(e["gradnorm_l0_2"], ())])
        initial = tf.where(initial > 0, initial, losses)  # step 1 sets L_i(0)
        lr = tf.abs(tf.cast(self.optimizer.learning_rate, tf.float32))
        new = gradients.gradnorm_weights(weights, 2.0 * part_norms / weights, losses, initial,
                                         hp["gradnorm_alpha"], lr)
        assignments = [(e["gradnorm_w1"], new[0]), (e["gradnorm_w2"], new[1]),
                       (e["gradnorm_l0_1"], initial[0]), (e["gradnorm_l0_2"], initial[1])]
        return gradients.total(grads), assignments

    def _step(self, inputs, targets, eval_inputs, eval_targets, hp, clipnorm, clipvalue, step, carried, term_every):
        # the terms' own gradients come from the step's tape when the update needs them or the probe measures
        # every step; otherwise the probe takes them on a forward pass of its own, on the steps it measures
        together = self.weighting is not None or self.probe == "every"
        with tf.GradientTape(persistent=together) as tape:
            loss, terms, out = self.loss_and_terms(inputs, targets, hp)
            parts = self.demo.parts_of(terms, hp, self.extra, self.settings) if together else None
        assignments = []
        term_grads = {name: self._gradients(tape, parts[name]) for name in self.demo.term_names} if together else None
        if self.weighting is not None:
            grads, assignments = self._weighted(term_grads, terms, hp)
        else:
            grads = self._gradients(tape, loss)
        del tape

        # reduce_sum of a stacked vector, not add_n: add_n sums many inputs in no fixed order
        global_norm, layer_norms = gradients.norms(grads, self.groups)
        loss_bad = tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.int32)
        grad_bad = tf.stack([_count_nonfinite(g) for g in grads])

        n_metrics = len(self.layout.metrics)
        last_metrics, last_probe = carried[:n_metrics], carried[n_metrics:]
        if not self.layout.probe_terms:
            probe = last_probe
        elif self.probe == "every":
            probe = gradients.anatomy(term_grads, self.groups)
        else:  # on step 1 and every term_every-th step, before the update (tapes do not reach into a cond)
            measure = lambda: gradients.anatomy(  # noqa: E731
                term_grads if together else self._term_gradients(inputs, targets, hp), self.groups)
            probe = tf.cond(tf.logical_or(tf.equal(step, 1), tf.equal(step % term_every, 0)), measure,
                            lambda: last_probe)

        grads = [_clip(g, clipnorm, clipvalue) for g in grads]
        self.optimizer.apply(grads, self.variables)
        for variable, value in assignments:
            variable.assign(value)
        if "alpha" in self.extra:  # projected gradient step: alpha stays in [0, 1]
            self.extra["alpha"].assign(tf.clip_by_value(self.extra["alpha"], 0.0, 1.0))
        weight_bad = tf.stack([_count_nonfinite(v) for v in self.variables])

        n = len(self.variables)
        grad_place = _last_true(grad_bad > 0)  # nearest the loss: backprop meets it first
        weight_place = _first_true(weight_bad > 0)
        place = tf.where(loss_bad > 0, 1, tf.where(grad_place >= 0, 2 + grad_place,
                                                   tf.where(weight_place >= 0, 2 + n + weight_place, 0)))
        nonfinite = loss_bad + tf.reduce_sum(grad_bad) + tf.reduce_sum(weight_bad)

        if self.demo.metrics_on_eval:  # on the held-out sample, at step 1 and every EVAL_EVERY steps
            def measure_metrics():
                metric_out = self.model(eval_inputs, training=False)
                found = self.demo.metrics(self.model, metric_out, (eval_inputs, eval_targets), hp, self.extra,
                                          self.settings)
                return _vector([found[m] for m in self.layout.metrics])
            metric_vector = tf.cond(tf.logical_or(tf.equal(step, 1), tf.equal(step % EVAL_EVERY, 0)),
                                    measure_metrics, lambda: last_metrics)
        else:
            found = self.demo.metrics(self.model, out, (inputs, targets), hp, self.extra, self.settings)
            metric_vector = _vector([found[m] for m in self.layout.metrics])
        values = [loss] + [terms[t] for t in self.layout.terms] + [global_norm] + list(layer_norms.values())
        values.append(tf.cast(nonfinite, tf.float32))
        if self.layout.has_alpha:
            values.append(self.demo.alpha(hp, self.extra, self.settings))
        carried = tf.concat([metric_vector, tf.reshape(probe, (-1,))], 0)
        vector = tf.concat([_vector(values), carried], 0)
        return vector, tf.cast(place, tf.int32), carried

    def fused(self, dataset: Dataset, eval_set: Dataset, hp_keys):
        """The traced function running K steps on (K, B, ...) stacked batches; traced once per engine."""
        if self._fused is not None:
            return self._fused

        def spec(d):
            return {k: tf.TensorSpec((None, None) + v.shape[1:], tf.float32) for k, v in d.items()}

        def eval_spec(d):
            return {k: tf.TensorSpec((None,) + v.shape[1:], tf.float32) for k, v in d.items()}

        width_nonfinite = self.layout.columns.index("nonfinite")
        scalar = tf.TensorSpec((), tf.float32)
        signature = [spec(dataset.inputs), spec(dataset.targets), eval_spec(eval_set.inputs),
                     eval_spec(eval_set.targets), {k: scalar for k in hp_keys}, scalar, scalar,
                     tf.TensorSpec((), tf.bool), tf.TensorSpec((), tf.int32),
                     tf.TensorSpec((len(self.layout.carried),), tf.float32), tf.TensorSpec((), tf.int32)]

        @tf.function(input_signature=signature)
        def run(inputs, targets, eval_inputs, eval_targets, hp, clipnorm, clipvalue, stop_on_nonfinite, first_step,
                carried, term_every):
            count = tf.shape(next(iter(inputs.values())))[0]
            width = len(self.layout.columns)
            vectors = tf.TensorArray(tf.float32, size=count, element_shape=(width,))
            places = tf.TensorArray(tf.int32, size=count, element_shape=())

            def body(i, seen, vectors, places, carried):
                batch_in = {k: v[i] for k, v in inputs.items()}
                batch_tg = {k: v[i] for k, v in targets.items()}
                vector, place, carried = self._step(batch_in, batch_tg, eval_inputs, eval_targets, hp, clipnorm,
                                                    clipvalue, first_step + i, carried, term_every)
                seen = tf.logical_or(seen, vector[width_nonfinite] > 0)
                return i + 1, seen, vectors.write(i, vector), places.write(i, place), carried

            def cond(i, seen, vectors, places, carried):
                return tf.logical_and(i < count, tf.logical_not(tf.logical_and(stop_on_nonfinite, seen)))

            done, _, vectors, places, _ = tf.while_loop(  # steps in order: one update before the next forward
                cond, body, (tf.constant(0), tf.constant(False), vectors, places, carried),
                parallel_iterations=1)
            return vectors.stack()[:done], places.stack()[:done]

        self._fused = run
        return run


def _vector(values):
    """Scalars as one float32 vector (an empty list gives an empty vector)."""
    if not values:
        return tf.zeros((0,), tf.float32)
    return tf.stack([tf.reshape(tf.cast(v, tf.float32), ()) for v in values])


def _count_nonfinite(x):
    return tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.int32))


def _first_true(flags):
    idx = tf.where(flags)
    return tf.cond(tf.size(idx) > 0, lambda: tf.cast(idx[0, 0], tf.int32), lambda: tf.constant(-1))


def _last_true(flags):
    idx = tf.where(flags)
    return tf.cond(tf.size(idx) > 0, lambda: tf.cast(idx[-1, 0], tf.int32), lambda: tf.constant(-1))


def _clip(g, clipnorm, clipvalue):
    g = tf.where(clipnorm > 0, tf.clip_by_norm(g, tf.maximum(clipnorm, 1e-12)), g)
    return tf.where(clipvalue > 0, tf.clip_by_value(g, -clipvalue, clipvalue), g)


# ----------------------------------------------------------------------------- the engine pool

POOL_PER_STRUCTURE = 2  # free engines kept per graph-shaping structure (as many as runs train at once, 2 cores)
POOL_TOTAL = 8  # free engines kept in all; past either cap the least recently used one is dropped
_POOL: "OrderedDict[tuple, list[Engine]]" = OrderedDict()
_POOL_LOCK = threading.Lock()


_BUILD_LOCK = threading.Lock()  # Keras builds one model at a time
_STRUCTURE_LOCKS: dict[tuple, threading.Lock] = {}
_BUILT: set[tuple] = set()  # structures an engine has been built for in this process


def _take_free(key: tuple) -> Engine | None:
    with _POOL_LOCK:
        free = _POOL.get(key)
        if not free:
            return None
        engine = free.pop()
        if not free:
            del _POOL[key]
        return engine


ENGINE_PATIENCE = 0.5  # seconds a run may wait for an engine of its structure to be given back, see acquire


def acquire(demo: demos.Demo, settings: Mapping[str, Any], prepare: Callable[[Engine], None] | None = None,
            share: Callable[[], bool] = lambda: False) -> Engine:
    """A free engine for these graph-shaping settings, or a new one, built and then ``prepare``-d (its step
    traced). One engine of a structure is built at a time, and while ``share()`` holds (runs that have not
    trained yet are waiting) a run first waits up to ENGINE_PATIENCE for an engine of its structure to be given
    back: a room pressing Train together traces one step, and the runs take turns on that engine a chunk each
    (their first records come quickly) instead of tracing more engines under the GIL first."""
    key = config.structure(demo.name, settings)
    engine = _take_free(key)
    deadline = time.perf_counter() + ENGINE_PATIENCE
    while engine is None and key in _BUILT and share() and time.perf_counter() < deadline:
        time.sleep(0.005)
        engine = _take_free(key)
    if engine is not None:
        return engine
    with _POOL_LOCK:
        building = _STRUCTURE_LOCKS.setdefault(key, threading.Lock())
    with building:
        engine = _take_free(key)  # given back while this run waited
        if engine is not None:
            return engine
        with _BUILD_LOCK:
            engine = Engine(demo, settings)
        if prepare is not None:
            prepare(engine)
        _BUILT.add(key)
        return engine


def release(engine: Engine) -> None:
    """Back to the pool, most recently used last; past the caps the least recently used engines are dropped."""
    with _POOL_LOCK:
        free = _POOL.pop(engine.key, [])
        free.append(engine)
        _POOL[engine.key] = free
        del free[:-POOL_PER_STRUCTURE]
        while sum(len(v) for v in _POOL.values()) > POOL_TOTAL:
            oldest = next(iter(_POOL))
            _POOL[oldest].pop(0)
            if not _POOL[oldest]:
                del _POOL[oldest]


def pool_size() -> int:
    with _POOL_LOCK:
        return sum(len(v) for v in _POOL.values())


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """Train one demo with given settings; ``run(steps)`` yields one record per step as it completes.

    >>> t = Trainer("sparse-penalty", {"variant": "naive", "penalty": 10}, seed=0)
    >>> records = list(t.run(100))
    """

    def __init__(self, demo: str, settings: Mapping[str, Any] | None = None, seed: int = 0,
                 stop_on_nonfinite: bool = False):
        self.demo = demos.get_demo(demo)
        self.settings = config.resolve(self.demo.name, settings)  # in force now; ``set`` changes the numbers
        self.initial_settings = dict(self.settings)
        self.seed = int(seed)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.data = self.demo.make_data(self.settings, self.seed)
        self.term_every = config.term_period(self.settings.get("term_grads", "off"))  # 0: off
        self.eval_set = self.data.take(np.random.default_rng([self.seed, 2]).permutation(len(self.data))[:EVAL_SIZE])
        self._order = np.random.default_rng([self.seed, 1])
        self._queue = np.empty(0, dtype=np.int64)
        # the engine (model, optimizer, traced step) is taken from the pool on first use and can be given back
        # between stretches of training (``suspend``), its state kept in numpy: a waiting run holds no model
        self._engine: Engine | None = None
        self._finalizer = None
        self._state: list[np.ndarray] | None = None
        self._initial_weights: list[np.ndarray] | None = None
        self.hp = self._hyperparameters()
        self.snapshots: list[tuple[int, list[np.ndarray]]] = []  # (step, weights) after each chunk, from step 0
        self.knobs = config.knob_keys(self.demo.name, self.settings)
        self.records = records.RecordLog(None, self.knobs, None, int_knobs=[
            k for k in self.knobs if config.param(demo, k, self.settings).kind == "int"])
        self.stopped = False  # set once a non-finite step ends a stop-on-nonfinite run
        self._changes_lock = threading.Lock()
        self._pending: dict[str, Any] = {}  # from ``set``: applies before the next step computed
        self.share_engine: Callable[[], bool] = lambda: False  # wait for a busy engine (see ``acquire``)
        self._scheduled: dict[int, dict[str, Any]] = {}  # from ``at``: step -> knobs applied from that step on

    def _hyperparameters(self) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v, tf.float32) for k, v in self.demo.hyperparameters(self.settings).items()}

    # -- knobs during a run ---------------------------------------------------------------------------

    def _checked(self, knobs: Mapping[str, Any]) -> dict[str, Any]:
        requested = self.requested
        return {key: config.live_change(self.demo.name, requested, key, raw) for key, raw in knobs.items()}

    def set(self, **knobs) -> None:
        """Change numeric settings (lr, c, penalty, epsilon, a fixed alpha, clipnorm, clipvalue, batch_size)
        from the next step computed on (the next chunk, if one is being trained), keeping weights and
        optimizer state. Checked as ``settings`` checks them; a bad value, or a key that shapes the graph or
        the data, raises ``ValueError`` (a :class:`~lossviz.settings.SettingError`) naming the key."""
        checked = self._checked(knobs)
        with self._changes_lock:
            self._pending.update(checked)

    def at(self, step: int, **knobs) -> None:
        """Schedule a knob change from ``step`` on (a step not trained yet); checked as :meth:`set`."""
        if step <= self.step:
            raise config.SettingError(f"step {step} is already trained (the run is at step {self.step})")
        checked = self._checked(knobs)
        with self._changes_lock:
            self._scheduled.setdefault(int(step), {}).update(checked)

    @property
    def requested(self) -> dict[str, Any]:
        """The settings in force once the pending changes apply."""
        with self._changes_lock:
            return {**self.settings, **self._pending}

    def _apply_due(self) -> None:
        """Apply the changes scheduled for the next step and the pending ``set`` ones (numbers only: no
        retrace, weights and optimizer slots untouched)."""
        with self._changes_lock:
            changes = {**self._scheduled.pop(self.step + 1, {}), **self._pending}
            self._pending = {}
        changes = {k: v for k, v in changes.items() if self.settings[k] != v}
        if not changes:
            return
        self.settings.update(changes)
        self.hp = self._hyperparameters()
        if "lr" in changes:
            self.engine.optimizer.learning_rate = config.effective_lr(self.demo.name, self.settings)

    def _next_scheduled(self) -> int | None:
        with self._changes_lock:
            later = [s for s in self._scheduled if s > self.step + 1]
        return min(later) if later else None

    @property
    def engine(self) -> Engine:
        """The run's engine, with the run's state: new weights from the seed the first time, the saved state
        after ``suspend``."""
        if self._engine is None:
            engine = acquire(self.demo, self.settings, prepare=self._trace, share=self.share_engine)
            if self._initial_weights is None:
                engine.reset(self.seed, config.effective_lr(self.demo.name, self.settings))
                self._initial_weights = engine.weights()
                self.snapshots = [(0, self._initial_weights)]
            else:
                engine.load_state(self._state)
                self._state = None
            self.records.configure(engine.layout.columns, engine.layout.place)
            self._finalizer = weakref.finalize(self, release, engine)
            self._engine = engine
        return self._engine

    def _trace(self, engine: Engine) -> None:
        engine.fused(self.data, self.eval_set, tuple(self.hp)).get_concrete_function()

    def suspend(self) -> None:
        """Give the engine back to the pool and keep the run's state in numpy (it goes on exactly where it was)."""
        if self._engine is not None:
            self._state = self._engine.state()
            self._engine = None
            self._finalizer()

    @property
    def initial_weights(self) -> list[np.ndarray]:
        if self._initial_weights is None:
            self.engine  # noqa: B018  (takes the engine: initial weights from the seed)
        return self._initial_weights

    @property
    def model(self) -> keras.Model:
        return self.engine.model

    @property
    def layout(self) -> Layout:
        return self.engine.layout

    @property
    def step(self) -> int:
        """The number of steps trained (the last record's step)."""
        return self.records.last_step

    @property
    def first_nonfinite(self) -> dict[str, Any] | None:
        """The first record with a non-finite value, or None."""
        return records.first_nonfinite(self.records)

    def _next_batches(self, count: int) -> np.ndarray:
        """(count, B) sample indices: shuffled epochs, drop-last, from the run's own generator."""
        b = min(self.settings["batch_size"], len(self.data))
        need = count * b
        while len(self._queue) < need:
            perm = self._order.permutation(len(self.data))
            self._queue = np.concatenate([self._queue, perm[: len(perm) // b * b]])
        idx, self._queue = self._queue[:need], self._queue[need:]
        return idx.reshape(count, b)

    def run(self, steps: int | None, chunk: int = DEFAULT_CHUNK,
            should_stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
        """Train ``steps`` more steps (``None``: until ``should_stop()``); yield each record. Fewer steps when
        a non-finite value stops a stop-on-nonfinite run, or when ``should_stop()`` turns true (checked
        between chunks). Knob changes apply between chunks; a scheduled one starts a chunk of its own."""
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        fused = self.engine.fused(self.data, self.eval_set, tuple(self.hp))
        left = steps
        while (left is None or left > 0) and not self.stopped and not (should_stop and should_stop()):
            self._apply_due()
            k = chunk if left is None else min(chunk, left)
            upcoming = self._next_scheduled()
            if upcoming is not None:
                k = min(k, upcoming - self.step - 1)
            idx = self._next_batches(k)
            batch = self.data.take(idx)
            vectors, places = fused(batch.inputs, batch.targets, self.eval_set.inputs, self.eval_set.targets,
                                    self.hp, np.float32(self.settings["clipnorm"]),
                                    np.float32(self.settings["clipvalue"]), self.stop_on_nonfinite,
                                    np.int32(self.step + 1), self._last_carried(), np.int32(max(self.term_every, 1)))
            vectors, places = vectors.numpy(), places.numpy()
            knobs = [float(self.settings[key]) for key in self.knobs]
            yield from self.records.append(self.step + 1, vectors, places, knobs)
            if len(vectors):
                self._snapshot()
            if self.stop_on_nonfinite and len(vectors) and vectors[-1][self.layout.columns.index("nonfinite")] > 0:
                self.stopped = True
            if left is not None:
                left -= k

    def _last_carried(self) -> np.ndarray:
        """The last record's values measured on some steps only (held-out metrics, the per-term probe), carried
        to the steps in between; zeros before step 1."""
        names = self.layout.carried
        if not len(self.records):
            return np.zeros(len(names), np.float32)
        last = self.records[-1]
        return np.array([last[m] for m in names], np.float32)

    def _snapshot(self) -> None:
        """Keep the weights for the training trajectory; past MAX_SNAPSHOTS, thin out every other one."""
        self.snapshots.append((self.step, self.engine.weights()))
        if len(self.snapshots) > MAX_SNAPSHOTS:
            self.snapshots = self.snapshots[:-1:2] + self.snapshots[-1:]

    def predict(self, dataset: Dataset | None = None) -> dict[str, np.ndarray]:
        """The model's outputs on ``dataset`` (default: the run's data), as numpy arrays."""
        dataset = dataset or self.data
        out = self.model(dataset.inputs, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def close(self) -> None:
        """Return the engine to the pool (also done when the trainer is garbage-collected)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def formula_diagnosis(trainer: Trainer) -> str | None:
    """For a ``custom`` run whose loss turned non-finite: replay the run (same seed and knob changes) to the step
    before, and name the sub-expression of the formula that turns non-finite first on that step's batch, e.g.
    ``log(p) = -inf at y = 1, p = 0``. None for other runs, or when the loss itself stayed finite."""
    first = records.first_nonfinite(trainer.records)
    if trainer.demo.name != "custom" or first is None or first["nonfinite_in"] != "loss":
        return None
    step = first["step"]
    initial = {**trainer.initial_settings, **records.knobs_of(trainer.records[0])}
    with Trainer("custom", initial, trainer.seed) as replay:
        for at, key, _, value in records.knob_changes(trainer.records):
            if at <= step:
                replay.at(at, **{key: value})
        if step > 1:
            for _ in replay.run(step - 1):
                pass
        replay._apply_due()
        batch = replay.data.take(replay._next_batches(1)[0])
        out = {k: np.asarray(v) for k, v in replay.model(batch.inputs, training=True).items()}
        values = demos.formula_inputs(out, batch.targets, replay.settings["task"])
        values.update(replay.demo.hyperparameters(replay.settings))
        return config.formula_of(replay.settings).diagnose(values)


def train(demo: str, settings: Mapping[str, Any] | None = None, steps: int = 200, seed: int = 0,
          stop_on_nonfinite: bool = False) -> list[dict[str, Any]]:
    """Run a whole training and return its records."""
    with Trainer(demo, settings, seed, stop_on_nonfinite) as trainer:
        return list(trainer.run(steps))


class TrainingJob:
    """A :class:`Trainer` in a background thread, so a UI can redraw, pause, step and turn knobs while it trains.

    ``steps`` is the run's length (``None``: until paused or stopped). ``records`` grows as chunks complete (the
    trainer's own log). ``pause()`` ends the current stretch after its chunk, ``resume()`` goes on towards
    ``steps``, ``play()`` goes on with no end, ``step(n)`` trains n more steps and pauses again, ``set(**knobs)``
    changes numbers from the next chunk on, ``stop()`` ends the run. Weights and optimizer state carry over
    from one stretch to the next, so a paused and resumed run equals an uninterrupted one, bit for bit.
    ``error`` holds the message of an exception that ended it.

    A page calls ``watched()`` whenever it draws the run. A stretch with no step budget (Play) that nobody has
    watched for ``unwatched_seconds`` pauses itself after its chunk; its status says so, and ``play()`` goes on.
    """

    def __init__(self, demo: str, settings: Mapping[str, Any] | None, steps: int | None, seed: int = 0,
                 stop_on_nonfinite: bool = False, chunk: int = DEFAULT_CHUNK, start: bool = True,
                 scheduler: Scheduler | None = None):
        self.trainer = Trainer(demo, settings, seed, stop_on_nonfinite)
        self.scheduler = scheduler or SCHEDULER
        self.trainer.share_engine = lambda: self.scheduler.newcomer_waiting
        self.steps = None if steps is None else int(steps)
        self.chunk = chunk
        self.error: str | None = None
        self.paused = not start
        self.pause_reason: str | None = None  # UNWATCHED when it paused itself
        self.unwatched_seconds = UNWATCHED_SECONDS
        self._watched = time.monotonic()
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._control = threading.Lock()  # one control call at a time (pages rerun from several threads)
        shutdown.register(self)
        if start:
            self._launch(self.steps)

    def _launch(self, until: int | None, pause_after: bool = False) -> None:
        """Train in a new thread up to step ``until`` (None: no end); the previous stretch has ended."""
        self._stop.clear()
        self.paused = False
        self.pause_reason = None
        self._watched = time.monotonic()
        left = None if until is None else until - self.trainer.step
        if left is not None and left < 1:
            self.paused = pause_after
            return
        self._thread = threading.Thread(target=self._work, args=(left, pause_after),
                                        name=f"lossviz-{self.trainer.demo.name}", daemon=True)
        self._thread.start()

    def _work(self, left: int | None, pause_after: bool) -> None:
        """Train in stretches: wait for a slot, train chunk after chunk, and give the slot (and the engine) back
        between chunks when another run waits, or when done (or, with no step budget, when nobody watches)."""
        playing = left is None

        def forgotten() -> bool:  # a Play that no page draws any more
            return playing and self.unwatched

        try:
            while self.can_continue and not self._stop.is_set() and (left is None or left > 0):
                if forgotten() or not self.scheduler.acquire(self, lambda: self._stop.is_set() or forgotten()):
                    if forgotten() and not self._stop.is_set():
                        self.pause_reason = UNWATCHED
                    break
                held = time.perf_counter()
                try:
                    while True:
                        before = self.trainer.step
                        for _ in self.trainer.run(self.chunk if left is None else min(self.chunk, left), self.chunk):
                            pass
                        if left is not None:
                            left -= self.trainer.step - before
                        if (self.trainer.step == before or self._stop.is_set() or not self.can_continue
                                or (left is not None and left <= 0) or self._should_yield(held) or forgotten()):
                            break
                finally:
                    self.scheduler.release(self)
                    self.trainer.suspend()
        except Exception as e:  # reported to the page, never raised into it
            self.error = f"{type(e).__name__}: {e}"
        if (pause_after or self.pause_reason) and not self._stop.is_set():
            self.paused = True

    def _should_yield(self, held: float) -> bool:
        """Give the slot back after this chunk: at once when a run that has not trained yet waits (its first
        record comes quickly), after a slice of SLICE_SECONDS when only runs that have trained wait (fewer
        swaps of the engine's state)."""
        if not self.scheduler.waiting:
            return False
        return self.scheduler.newcomer_waiting or time.perf_counter() - held >= SLICE_SECONDS

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # -- controls -------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Pause after the current chunk (blocks until it is done, a chunk at most)."""
        with self._control:
            self._halt()
            self.paused = not self.finished

    def resume(self) -> None:
        """Go on towards ``steps`` (with no end for a played run)."""
        with self._control:
            if not self.running and self.can_continue:
                self._stopped = False
                self._launch(self.steps)

    def play(self) -> None:
        """Go on with no step budget, until paused or stopped."""
        with self._control:
            self.steps = None
        self.resume()

    def step(self, n: int | None = None) -> None:
        """Train ``n`` more steps (default: one chunk), then pause."""
        with self._control:
            self._halt()
            if self.can_continue:
                target = self.trainer.step + (n or self.chunk)
                if self.steps is not None:
                    self.steps = max(self.steps, target)
                self._stopped = False
                self._launch(target, pause_after=True)

    def stop(self) -> None:
        """End the run after the current chunk (does not wait)."""
        self._stopped = True
        self.paused = False
        self._stop.set()

    def set(self, **knobs) -> None:
        """Knob changes from the next chunk on; see :meth:`Trainer.set`."""
        self.trainer.set(**knobs)

    def watched(self) -> None:
        """A page has just drawn this run (a Play run nobody draws pauses itself, see ``unwatched_seconds``)."""
        self._watched = time.monotonic()

    @property
    def unwatched(self) -> bool:
        return time.monotonic() - self._watched > self.unwatched_seconds

    # -- state ----------------------------------------------------------------------------------------

    @property
    def records(self) -> records.RecordLog:
        return self.trainer.records

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def can_continue(self) -> bool:
        return not self.trainer.stopped and self.error is None

    @property
    def finished(self) -> bool:
        """Ended for good: its steps are done, a non-finite value stopped it, or an error."""
        if self.running:
            return False
        done = self.steps is not None and self.trainer.step >= self.steps
        return not self.can_continue or (done and not self.paused)

    @property
    def queue_position(self) -> int | None:
        """How many runs are ahead of this one while it waits for a slot; None when it is not waiting."""
        return self.scheduler.position(self)

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``paused`` (``paused: nobody is watching`` when it paused itself), ``stopped``
        (by ``stop()``) or ``finished``."""
        if self.running:
            return "queued" if self.queue_position is not None else "running"
        if self.paused and self.can_continue:
            return f"paused: {self.pause_reason}" if self.pause_reason else "paused"
        if self._stopped and not self.finished:
            return "stopped"
        return "finished"

    @property
    def stopped_early(self) -> bool:
        return self.status == "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current stretch ends; True when it has ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


atexit.register(shutdown.stop_all)  # no training thread is left inside TensorFlow when the interpreter ends
