"""A run: its state, its knob schedule and its records, trained by the compiled step of its structure.

``Trainer(demo, settings, seed).run(steps)`` yields one record per step (a flat dict whose keys are the CSV
columns, see ``step.Layout``) while it trains. The step itself lives in :mod:`lossviz.step`: one compiled function
per structure and process, shared by every run; a run is only its state (weights, optimizer slots, the loss's own
variables, carried values), its batch order, its schedule and its records.

Reproducibility: weights, data and batch order come from seeded numpy generators, steps run strictly in order,
and the step is a pure function of the state, so the same seed and settings give the same records, bit for bit,
whether one run trains or sixteen share the step, and whether or not it was paused.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Mapping

import numpy as np
import tensorflow as tf

from . import catalog, records, settings as config, shutdown
from .data import Dataset
from .knobs import FULL_BATCH, METRICS_DEFAULT, metrics_period, sharpness_period
from .step import CHUNK, Counters, Layout, Numbers, State, Step, get as get_step

EVAL_SIZE = 1024
DEFAULT_CHUNK = CHUNK
MAX_SNAPSHOTS = 200


class Trainer:
    """Train one demo with given settings; ``run(steps)`` yields one record per step as it completes.

    >>> t = Trainer("sparse-penalty", {"variant": "naive", "penalty": 10}, seed=0)
    >>> records = list(t.run(100))
    """

    def __init__(self, demo: str, settings: Mapping[str, Any] | None = None, seed: int = 0,
                 stop_on_nonfinite: bool = False):
        self.demo = catalog.get(demo)
        self.settings = config.resolve(self.demo.name, settings)  # in force now; ``set`` changes the numbers
        self.initial_settings = dict(self.settings)
        self.seed = int(seed)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.data = self.demo.make_data(self.settings, self.seed)
        self.term_every = config.term_period(self.settings.get("term_grads", "off"))  # 0: off
        self.sharpness_every = sharpness_period(self.settings.get("sharpness", "off"))  # 0: off
        self.metrics_every = metrics_period(self.settings.get("metrics", METRICS_DEFAULT))  # held-out metrics
        self.eval_set = self.demo.make_eval(self.settings, self.seed) or self.data.take(
            np.random.default_rng([self.seed, 2]).permutation(len(self.data))[:EVAL_SIZE])
        self._order = np.random.default_rng([self.seed, 1])
        self._queue = np.empty(0, dtype=np.int64)
        self._compiled: Step | None = None  # the structure's step, taken on first use
        self._tensors: tuple[Dataset, Dataset] | None = None  # the data and the evaluation set, as tensors
        self.state: State | None = None
        self._initial_weights: list[np.ndarray] | None = None
        self.hp = self._hyperparameters()
        self.snapshots: list[tuple[int, list[np.ndarray]]] = []  # (step, weights) after each chunk, from step 0
        self.knobs = config.knob_keys(self.demo.name, self.settings)
        self.records = records.RecordLog(None, self.knobs, None, int_knobs=[
            k for k in self.knobs if config.param(demo, k, self.settings).kind == "int"])
        self.stopped = False  # set once a non-finite step ends a stop-on-nonfinite run
        self._changes_lock = threading.Lock()
        self._pending: dict[str, Any] = {}  # from ``set``: applies before the next step computed
        self._scheduled: dict[int, dict[str, Any]] = {}  # from ``at``: step -> knobs applied from that step on
        self._diagnosis: tuple = (None, None)  # (the step of the first NaN, its diagnosis)

    def train_on(self, batch: Dataset) -> None:
        """Train and evaluate on ``batch`` alone, every step on all of it (the check-up's one-batch probe); before
        the first step."""
        if self._tensors is not None:
            raise RuntimeError("train_on comes before the first step")
        self.data = self.eval_set = batch
        self.settings["batch_size"] = len(batch)

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
        if changes:
            self.settings.update(changes)
            self.hp = self._hyperparameters()

    def _next_scheduled(self) -> int | None:
        with self._changes_lock:
            later = [s for s in self._scheduled if s > self.step + 1]
        return min(later) if later else None

    # -- the state ------------------------------------------------------------------------------------

    @property
    def compiled(self) -> Step:
        """The compiled step of this run's structure (shared with every run of the structure), and the run's
        state: new weights from the seed the first time."""
        if self._compiled is None:
            compiled = get_step(self.demo, self.settings)
            self.state = compiled.initial_state(self.seed)
            self._initial_weights = [np.array(v) for v in self.state.trained]
            self.snapshots = [(0, self._initial_weights)]
            self.records.configure(compiled.layout.columns, compiled.layout.place)
            self._compiled = compiled
        return self._compiled

    @property
    def ready(self) -> bool:
        """Whether the step of this run's structure is compiled (a first run of a structure waits for it)."""
        return (self._compiled or get_step(self.demo, self.settings)).ready

    @property
    def layout(self) -> Layout:
        return self.compiled.layout

    def weights(self) -> list[np.ndarray]:
        """The trained values now (model weights, then the loss's own trained variables)."""
        self.compiled  # noqa: B018  (the state exists from here on)
        return [np.array(v) for v in self.state.trained]

    def set_weights(self, values) -> None:
        """Replace the trained values (model weights, then the loss's own trained variables)."""
        self.compiled  # noqa: B018
        self.state = self.state.with_trained(values)

    @property
    def initial_weights(self) -> list[np.ndarray]:
        if self._initial_weights is None:
            self.compiled  # noqa: B018  (initial weights from the seed)
        return self._initial_weights

    @property
    def step(self) -> int:
        """The number of steps trained (the last record's step)."""
        return self.records.last_step

    @property
    def first_nonfinite(self) -> dict[str, Any] | None:
        """The first record with a non-finite value, or None."""
        return records.first_nonfinite(self.records)

    @property
    def batch(self) -> int:
        """Samples a step: the batch size, or the whole training set (``batch_size=full``, or a larger batch)."""
        size = self.settings["batch_size"]
        return len(self.data) if size == FULL_BATCH else min(size, len(self.data))

    def _next_batches(self, count: int) -> np.ndarray:
        """(count, B) sample indices: shuffled epochs, drop-last, from the run's own generator."""
        b = self.batch
        need = count * b
        while len(self._queue) < need:
            perm = self._order.permutation(len(self.data))
            self._queue = np.concatenate([self._queue, perm[: len(perm) // b * b]])
        idx, self._queue = self._queue[:need], self._queue[need:]
        return idx.reshape(count, b)

    def _data(self) -> tuple[Dataset, Dataset]:
        if self._tensors is None:
            convert = lambda d: {k: tf.constant(v, tf.float32) for k, v in d.items()}  # noqa: E731
            self._tensors = (Dataset(convert(self.data.inputs), convert(self.data.targets)),
                             Dataset(convert(self.eval_set.inputs), convert(self.eval_set.targets)))
        return self._tensors

    # -- training -------------------------------------------------------------------------------------

    def warm(self) -> float:
        """Compile the step of this run's structure for its batch size, training nothing; returns the seconds."""
        start = time.perf_counter()
        data, eval_set = self._data()
        idx = np.zeros((CHUNK, self.batch), np.int32)
        self.compiled.run(self.state, data, eval_set, idx, Numbers(0.0, 0.0, 0.0, self.hp), Counters(0, 1, 1, False))
        return time.perf_counter() - start

    def advance(self, steps: int | None, chunk: int = DEFAULT_CHUNK, should_stop=None) -> int:
        """Train ``steps`` more steps (``None``: until ``should_stop()``), chunk after chunk; return how many
        were trained. Fewer when a non-finite value stops a stop-on-nonfinite run or ``should_stop()`` turns true
        (checked between chunks). Knob changes apply between chunks; a scheduled one starts a chunk of its own."""
        done = 0
        for k in self._chunks(steps, chunk, should_stop):
            done += k
        return done

    def run(self, steps: int | None, chunk: int = DEFAULT_CHUNK, should_stop=None) -> Iterator[dict[str, Any]]:
        """As :meth:`advance`, yielding each record as its chunk completes."""
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        for k in self._chunks(steps, chunk, should_stop):
            n = len(self.records)
            yield from self.records.take(range(n - k, n))

    def _chunks(self, steps: int | None, chunk: int, should_stop) -> Iterator[int]:
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        chunk = min(chunk, CHUNK)
        compiled = self.compiled
        data, eval_set = self._data()
        left = steps
        while (left is None or left > 0) and not self.stopped and not (should_stop and should_stop()):
            self._apply_due()
            k = chunk if left is None else min(chunk, left)
            upcoming = self._next_scheduled()
            if upcoming is not None:
                k = min(k, upcoming - self.step - 1)
            idx = np.zeros((CHUNK, self.batch), np.int32)
            idx[:k] = self._next_batches(k)
            numbers = Numbers(config.effective_lr(self.demo.name, self.settings), self.settings["clipnorm"],
                              self.settings["clipvalue"], self.hp)
            counters = Counters(k, self.step + 1, max(self.term_every, 1), self.stop_on_nonfinite,
                                max(self.sharpness_every, 1), self.metrics_every)
            self.state, vectors, places = compiled.run(self.state, data, eval_set, idx, numbers, counters)
            self.records.append(self.step + 1, vectors, places, [float(self.settings[key]) for key in self.knobs])
            if len(vectors):
                self._snapshot()
            if self.stop_on_nonfinite and len(vectors) and vectors[-1][compiled.layout.columns.index("nonfinite")] > 0:
                self.stopped = True
            if left is not None:
                left -= k
            yield len(vectors)

    def _snapshot(self) -> None:
        """Keep the weights for the training trajectory; past MAX_SNAPSHOTS, thin out every other one."""
        self.snapshots.append((self.step, self.weights()))
        if len(self.snapshots) > MAX_SNAPSHOTS:
            self.snapshots = self.snapshots[:-1:2] + self.snapshots[-1:]

    def diagnosis(self) -> str | None:
        """The run's first non-finite value in its loss's own terms (:func:`diagnosis`), found once per run: a
        replay that fails says so instead of raising (a page asks at every redraw)."""
        first = records.first_nonfinite(self.records)
        if first is None:
            return None
        if self._diagnosis[0] != first["step"]:
            try:
                found = diagnosis(self)
            except Exception as e:  # noqa: BLE001  (a replay that fails must not take a page down)
                text = str(e).splitlines()[0][:200] if str(e) else ""
                found = f"the replay failed ({type(e).__name__}: {text})"
            self._diagnosis = (first["step"], found)
        return self._diagnosis[1]

    def next_batch(self) -> Dataset:
        """The batch the next step will train on (taken from the run's order: call it only on a replay)."""
        return self.data.take(self._next_batches(1)[0])

    def forward(self, inputs: Mapping[str, np.ndarray], training: bool = False) -> dict[str, np.ndarray]:
        """The model's outputs for ``inputs`` at the run's current weights."""
        return self.compiled.forward(self.state, inputs, training)

    def loss(self, batch: Dataset) -> float:
        """The total loss on ``batch`` at the run's current weights (eagerly; for checks)."""
        compiled = self.compiled
        trained, fixed, _, _ = self.state.parts()
        with compiled.scope(trained, fixed):
            total, _, _ = compiled.loss_and_terms(batch.inputs, batch.targets, self.hp)
        return float(total)

    def predict(self, dataset: Dataset | None = None) -> dict[str, np.ndarray]:
        """The model's outputs on ``dataset`` (default: the run's data), as numpy arrays."""
        return self.forward((dataset or self.data).inputs)

    def close(self) -> None:
        """Nothing to give back (the step is shared; the state goes with the trainer); kept for ``with``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def diagnosis(trainer: Trainer) -> str | None:
    """A run's first non-finite value in its loss's own terms (``Demo.diagnose``: a formula's sub-expression, the
    line of a file of your own code); None for a finite run or a demo without one."""
    first = records.first_nonfinite(trainer.records)
    if first is None or trainer.demo.diagnose is None:
        return None
    return trainer.demo.diagnose(trainer, first)


def train(demo: str, settings: Mapping[str, Any] | None = None, steps: int = 200, seed: int = 0,
          stop_on_nonfinite: bool = False) -> list[dict[str, Any]]:
    """Run a whole training and return its records."""
    with Trainer(demo, settings, seed, stop_on_nonfinite) as trainer:
        return list(trainer.run(steps))


def warm(demo_names, should_stop=lambda: False) -> dict[str, float]:
    """Compile the default structure of each demo (a server does it as it starts); seconds per demo."""
    seconds = {}
    for name in demo_names:
        if should_stop():
            break
        seconds[name] = Trainer(name).warm()
    return seconds


class Warming:
    """:func:`warm` in a background thread. At exit the process waits for the compile in flight (a thread cut off
    inside the compiler aborts the interpreter) and skips the others."""

    def __init__(self, demo_names):
        self.seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(tuple(demo_names),), name="lossviz-warm",
                                        daemon=True)
        shutdown.register(self, patience=shutdown.COMPILE_SECONDS)
        self._thread.start()

    def _work(self, names) -> None:
        try:
            self.seconds = warm(names, self._stop.is_set)
        except Exception:  # a run that needs the structure compiles it itself, and reports what failed
            pass

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
