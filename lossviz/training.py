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
(two-branch only), ``metric:<name>``.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow as tf
import keras

from . import demos, models, records, settings as config
from .data import Dataset

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
EVAL_SIZE = 1024
DEFAULT_CHUNK = 20
MAX_SNAPSHOTS = 200


@dataclass
class Layout:
    """Names of the entries of a step's float vector, and of the places a non-finite value can appear."""

    terms: tuple[str, ...]
    layers: tuple[str, ...]
    metrics: tuple[str, ...]
    has_alpha: bool
    variables: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return (["loss"] + [f"loss:{t}" for t in self.terms] + ["grad_norm"]
                + [f"grad_norm:{name}" for name in self.layers] + ["nonfinite"]
                + (["alpha"] if self.has_alpha else []) + [f"metric:{m}" for m in self.metrics])

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
    """One built model with its extra variables (alpha, log-variances), optimizer and traced fused step."""

    def __init__(self, demo: demos.Demo, settings: Mapping[str, Any]):
        self.demo = demo
        self.key = config.structure(demo.name, settings)
        # only the graph-shaping settings (mask, variant, alpha mode, optimizer): numbers reach the step as
        # tensors, so no number of the run that built this engine can leak into a later run
        self.settings = dict(self.key[1:])
        self.model = demo.build(self.settings)
        self.extra_init = demo.extra_variables(self.settings)
        self.extra = {name: keras.Variable(np.float32(v), name=name) for name, v in self.extra_init.items()}
        self.variables = list(self.model.trainable_weights) + list(self.extra.values())
        self.optimizer = OPTIMIZERS[self.settings["optimizer"]](learning_rate=1e-3)
        self.optimizer.build(self.variables)
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(self.model.trainable_weights):
            groups.setdefault(models.layer_of(w), []).append(i)
        offset = len(self.model.trainable_weights)
        for j, name in enumerate(self.extra):  # alpha, or the two log-variances, each a group of its own
            groups[name] = [offset + j]
        self.groups = groups
        self.layout = Layout(
            terms=demo.term_names, layers=tuple(groups), metrics=demo.metric_names,
            has_alpha=demo.alpha is not None, variables=tuple(v.path for v in self.variables))
        self._fused = None

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

    def set_weights(self, values) -> None:
        for v, value in zip(self.variables, values):
            v.assign(value)

    # -- the compiled step ----------------------------------------------------------------------------

    def loss_and_terms(self, inputs, targets, hp):
        """Forward pass: (total loss, dict of terms, outputs). Used in the step and by the landscapes."""
        out = self.model(inputs, training=True)
        terms, total = self.demo.terms(self.model, out, (inputs, targets), hp, self.extra, self.settings)
        return total, terms, out

    def _step(self, inputs, targets, eval_inputs, eval_targets, hp, clipnorm, clipvalue):
        with tf.GradientTape() as tape:
            loss, terms, out = self.loss_and_terms(inputs, targets, hp)
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]

        # reduce_sum of a stacked vector, not add_n: add_n sums many inputs in no fixed order
        squares = tf.stack([tf.reduce_sum(tf.square(g)) for g in grads])
        layer_norms = [tf.sqrt(tf.reduce_sum(tf.gather(squares, idx))) for idx in self.groups.values()]
        global_norm = tf.sqrt(tf.reduce_sum(squares))
        loss_bad = tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.int32)
        grad_bad = tf.stack([_count_nonfinite(g) for g in grads])

        grads = [_clip(g, clipnorm, clipvalue) for g in grads]
        self.optimizer.apply(grads, self.variables)
        if "alpha" in self.extra:  # projected gradient step: alpha stays in [0, 1]
            self.extra["alpha"].assign(tf.clip_by_value(self.extra["alpha"], 0.0, 1.0))
        weight_bad = tf.stack([_count_nonfinite(v) for v in self.variables])

        n = len(self.variables)
        grad_place = _last_true(grad_bad > 0)  # nearest the loss: backprop meets it first
        weight_place = _first_true(weight_bad > 0)
        place = tf.where(loss_bad > 0, 1, tf.where(grad_place >= 0, 2 + grad_place,
                                                   tf.where(weight_place >= 0, 2 + n + weight_place, 0)))
        nonfinite = loss_bad + tf.reduce_sum(grad_bad) + tf.reduce_sum(weight_bad)

        if self.demo.metrics_on_eval:
            metric_out = self.model(eval_inputs, training=False)
            metrics = self.demo.metrics(self.model, metric_out, (eval_inputs, eval_targets), hp, self.extra,
                                        self.settings)
        else:
            metrics = self.demo.metrics(self.model, out, (inputs, targets), hp, self.extra, self.settings)
        values = [loss] + [terms[t] for t in self.layout.terms] + [global_norm] + layer_norms
        values.append(tf.cast(nonfinite, tf.float32))
        if self.layout.has_alpha:
            values.append(self.demo.alpha(hp, self.extra, self.settings))
        values += [metrics[m] for m in self.layout.metrics]
        vector = tf.stack([tf.reshape(tf.cast(v, tf.float32), ()) for v in values])
        return vector, tf.cast(place, tf.int32)

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
                     tf.TensorSpec((), tf.bool)]

        @tf.function(input_signature=signature)
        def run(inputs, targets, eval_inputs, eval_targets, hp, clipnorm, clipvalue, stop_on_nonfinite):
            count = tf.shape(next(iter(inputs.values())))[0]
            width = len(self.layout.columns)
            vectors = tf.TensorArray(tf.float32, size=count, element_shape=(width,))
            places = tf.TensorArray(tf.int32, size=count, element_shape=())

            def body(i, seen, vectors, places):
                batch_in = {k: v[i] for k, v in inputs.items()}
                batch_tg = {k: v[i] for k, v in targets.items()}
                vector, place = self._step(batch_in, batch_tg, eval_inputs, eval_targets, hp, clipnorm, clipvalue)
                seen = tf.logical_or(seen, vector[width_nonfinite] > 0)
                return i + 1, seen, vectors.write(i, vector), places.write(i, place)

            def cond(i, seen, vectors, places):
                return tf.logical_and(i < count, tf.logical_not(tf.logical_and(stop_on_nonfinite, seen)))

            done, _, vectors, places = tf.while_loop(  # steps in order: one update before the next forward
                cond, body, (tf.constant(0), tf.constant(False), vectors, places), parallel_iterations=1)
            return vectors.stack()[:done], places.stack()[:done]

        self._fused = run
        return run


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

_POOL: dict[tuple, list[Engine]] = {}
_POOL_LOCK = threading.Lock()


def acquire(demo: demos.Demo, settings: Mapping[str, Any]) -> Engine:
    """A free engine for these graph-shaping settings, built if none is free (under a process lock)."""
    key = config.structure(demo.name, settings)
    with _POOL_LOCK:
        free = _POOL.setdefault(key, [])
        if free:
            return free.pop()
        return Engine(demo, settings)


def release(engine: Engine) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(engine.key, []).append(engine)


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
        self.settings = config.resolve(self.demo.name, settings)
        self.seed = int(seed)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.data = self.demo.make_data(self.settings, self.seed)
        self.eval_set = self.data.take(np.random.default_rng([self.seed, 2]).permutation(len(self.data))[:EVAL_SIZE])
        self._order = np.random.default_rng([self.seed, 1])
        self._queue = np.empty(0, dtype=np.int64)
        self.engine = acquire(self.demo, self.settings)
        self._finalizer = weakref.finalize(self, release, self.engine)
        self.engine.reset(self.seed, config.effective_lr(self.demo.name, self.settings))
        self.hp = {k: tf.constant(v, tf.float32) for k, v in self.demo.hyperparameters(self.settings).items()}
        self.initial_weights = self.engine.weights()
        self.snapshots: list[tuple[int, list[np.ndarray]]] = [(0, self.initial_weights)]  # after each chunk
        self.records: list[dict[str, Any]] = []
        self.stopped = False  # set once a non-finite step ends a stop-on-nonfinite run

    @property
    def model(self) -> keras.Model:
        return self.engine.model

    @property
    def layout(self) -> Layout:
        return self.engine.layout

    @property
    def step(self) -> int:
        return len(self.records)

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

    def run(self, steps: int, chunk: int = DEFAULT_CHUNK,
            should_stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
        """Train ``steps`` more steps; yield each record. Fewer steps when a non-finite value stops a
        stop-on-nonfinite run, or when ``should_stop()`` turns true (checked between chunks)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        fused = self.engine.fused(self.data, self.eval_set, tuple(self.hp))
        columns = self.layout.columns
        left = steps
        while left > 0 and not self.stopped and not (should_stop and should_stop()):
            k = min(chunk, left)
            idx = self._next_batches(k)
            batch = self.data.take(idx)
            vectors, places = fused(batch.inputs, batch.targets, self.eval_set.inputs, self.eval_set.targets,
                                    self.hp, np.float32(self.settings["clipnorm"]),
                                    np.float32(self.settings["clipvalue"]), self.stop_on_nonfinite)
            vectors, places = vectors.numpy(), places.numpy()
            for vector, code in zip(vectors, places):
                record = self._record(columns, vector, int(code))
                self.records.append(record)
                yield record
            if len(vectors):
                self._snapshot()
            if self.stop_on_nonfinite and len(vectors) and vectors[-1][columns.index("nonfinite")] > 0:
                self.stopped = True
            left -= k

    def _snapshot(self) -> None:
        """Keep the weights for the training trajectory; past MAX_SNAPSHOTS, thin out every other one."""
        self.snapshots.append((self.step, self.engine.weights()))
        if len(self.snapshots) > MAX_SNAPSHOTS:
            self.snapshots = self.snapshots[:-1:2] + self.snapshots[-1:]

    def _record(self, columns, vector, code) -> dict[str, Any]:
        place, kind = self.layout.place(code)
        record: dict[str, Any] = {"step": self.step + 1}
        for name, value in zip(columns, vector.tolist()):
            if name == "nonfinite":
                record[name] = int(value)
                record["first_nonfinite"] = place
                record["nonfinite_in"] = kind
            else:
                record[name] = value
        return record

    def predict(self, dataset: Dataset | None = None) -> dict[str, np.ndarray]:
        """The model's outputs on ``dataset`` (default: the run's data), as numpy arrays."""
        dataset = dataset or self.data
        out = self.model(dataset.inputs, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def close(self) -> None:
        """Return the engine to the pool (also done when the trainer is garbage-collected)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def train(demo: str, settings: Mapping[str, Any] | None = None, steps: int = 200, seed: int = 0,
          stop_on_nonfinite: bool = False) -> list[dict[str, Any]]:
    """Run a whole training and return its records."""
    with Trainer(demo, settings, seed, stop_on_nonfinite) as trainer:
        return list(trainer.run(steps))


class TrainingJob:
    """A :class:`Trainer` running in a background thread, so a UI can redraw and stop it while it trains.

    ``records`` grows as chunks complete (it is the trainer's own list); ``stop()`` ends the run after the
    current chunk; ``error`` holds the message of an exception that ended it.
    """

    def __init__(self, demo: str, settings: Mapping[str, Any] | None, steps: int, seed: int = 0,
                 stop_on_nonfinite: bool = False, chunk: int = DEFAULT_CHUNK):
        self.trainer = Trainer(demo, settings, seed, stop_on_nonfinite)
        self.steps = int(steps)
        self.chunk = chunk
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"lossviz-{demo}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            for _ in self.trainer.run(self.steps, self.chunk, should_stop=self._stop.is_set):
                pass
        except Exception as e:  # reported to the page, never raised into it
            self.error = f"{type(e).__name__}: {e}"

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.trainer.records

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped_early(self) -> bool:
        return not self.running and len(self.records) < self.steps

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; True when it has ended."""
        self._thread.join(timeout)
        return not self.running
