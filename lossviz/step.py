"""The compiled training step: a pure function of a run's state, built and compiled once per structure.

A *structure* is what shapes the graph (``settings.structure``: demo, optimizer, variant, mask, alpha mode,
probe mode). Its :class:`Step` holds a model whose variables only name shapes and places (no run's weights
live in them), and one compiled function that takes a run's state (trained values, fixed values, optimizer
slots, carried probe values) and a chunk of batch indices, and returns the new state and the chunk's records.
Every run of the structure calls the same function from its own thread with its own state: nothing is swapped,
pooled or suspended. The model is called inside ``keras.StatelessScope``, so the demos' loss functions read the
run's values through the variables as they would read the variables themselves.

Speed: up to ``CHUNK`` steps are fused in one call (a ``tf.while_loop``), every probe is computed inside it
(terms, global and per-layer gradient norms, non-finite counts and their place, alpha, metrics), and the function
is compiled by XLA (``jit_compile``) where it compiles; a structure that does not compile keeps the plain step,
and says why (``Step.xla_error``). Either way the choice belongs to the structure, so the same settings always
give the same records.

A record vector holds, in :class:`Layout` order: ``loss``, ``loss:<term>``, ``grad_norm``,
``grad_norm:<layer>``, ``nonfinite``, ``alpha`` (two-branch), then the carried columns: ``metric:<name>`` and
the per-term probe (``grad_norm@<term>``, ``grad_norm@<term>:<layer>``, ``cos:<a>|<b>``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import numpy as np
import tensorflow as tf
import keras

from . import curvature, demos, gradients, models, optimizers, settings as config, tracenames
from .data import Dataset

CHUNK = 40  # steps per compiled call at most: a run's chunk (its knobs change between chunks)
MAX_STEPS = 24  # compiled steps kept per process (least recently used dropped; a run keeps its own)
# LOSSVIZ_XLA=0 keeps every structure on the plain step: a diagnostic switch (XLA's rounding differs, so the
# records of a process with it differ from everyone else's)
XLA = os.environ.get("LOSSVIZ_XLA", "1") != "0"


@dataclass
class Layout:
    """Names of the entries of a step's float vector, and of the places a non-finite value can appear."""

    terms: tuple[str, ...]
    layers: tuple[str, ...]
    metrics: tuple[str, ...]
    has_alpha: bool
    variables: tuple[str, ...]
    probe_terms: tuple[str, ...] = ()  # the terms whose own gradients are measured (empty: probe off)
    sharpness: tuple[str, ...] = ()  # the sharpness columns measured (empty: the curvature probe off)
    weights: int = 0  # the trained values, in all (the length of an eigenvector)

    @property
    def columns(self) -> list[str]:
        return (["loss"] + [f"loss:{t}" for t in self.terms] + ["grad_norm"]
                + [f"grad_norm:{name}" for name in self.layers] + ["nonfinite"]
                + (["alpha"] if self.has_alpha else []) + (["stability_limit"] if self.sharpness else [])
                + self.carried)

    @property
    def carried(self) -> list[str]:
        """The columns measured on some steps only and carried in between: the metrics, the per-term probe, the
        sharpness."""
        return ([f"metric:{m}" for m in self.metrics] + gradients.columns(self.probe_terms, self.layers)
                + list(self.sharpness))

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """The parts of a run's carried vector (:class:`Carried`): metrics, per-term probe, sharpness, and the
        eigenvectors the next measurement starts from (one per sharpness column)."""
        n_probe = len(gradients.columns(self.probe_terms, self.layers))
        return len(self.metrics), n_probe, len(self.sharpness), self.weights * len(self.sharpness)

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


@dataclass
class State:
    """Everything a run's next step depends on, as one float32 vector (one argument for the compiled step): the
    trained values (model weights, then the loss's own trained variables: alpha, log-variances), the fixed ones
    (the model's other weights, then the loss's own state: GradNorm's weights), the optimizer's slots, and the
    carried values (metrics, per-term probe); ``shapes`` has the shapes of each of the four parts."""

    values: Any
    shapes: tuple

    def parts(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
        """(trained, fixed, slots, carried) as numpy arrays."""
        flat = np.asarray(self.values)
        out, start = [], 0
        for part in self.shapes:
            arrays = []
            for shape in part:
                size = int(np.prod(shape))
                arrays.append(flat[start:start + size].reshape(shape))
                start += size
            out.append(arrays)
        return out[0], out[1], out[2], out[3][0]

    @property
    def trained(self) -> list[np.ndarray]:
        return self.parts()[0]

    @property
    def fixed(self) -> list[np.ndarray]:
        return self.parts()[1]

    def with_trained(self, trained) -> "State":
        _, fixed, slots, carried = self.parts()
        return State(_pack_numpy(trained, fixed, slots, carried), self.shapes)


def _pack_numpy(*parts) -> np.ndarray:
    arrays = [np.ravel(np.asarray(v, np.float32)) for part in parts[:3] for v in part] + [np.ravel(parts[3])]
    return np.concatenate(arrays).astype(np.float32) if arrays else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Numbers:
    """The float inputs of a chunk: the learning rate, the clipping, and the loss's knobs ``hp`` (by name). Packed
    into one vector in the order of the step's ``hp_keys`` (binding each argument of the compiled call costs time)."""

    lr: float
    clipnorm: float
    clipvalue: float
    hp: Mapping[str, Any]

    def pack(self, keys: tuple[str, ...]) -> np.ndarray:
        missing = [k for k in keys if k not in self.hp]
        if missing:
            raise KeyError(f"the step reads the knobs {keys}; {missing} not given")
        return np.array([self.lr, self.clipnorm, self.clipvalue] + [float(self.hp[k]) for k in keys], np.float32)

    @staticmethod
    def unpack(vector, keys: tuple[str, ...]) -> "Numbers":
        return Numbers(vector[0], vector[1], vector[2], {k: vector[3 + i] for i, k in enumerate(keys)})

    @staticmethod
    def spec(keys: tuple[str, ...]) -> tf.TensorSpec:
        return tf.TensorSpec((3 + len(keys),), tf.float32)


@dataclass(frozen=True)
class Counters:
    """The integer inputs of a chunk: how many steps to run, the step number of the first, the per-term probe's
    period, whether a non-finite value ends the chunk, the sharpness probe's period and the held-out metrics'."""

    count: Any
    first_step: Any
    term_every: Any
    stop_on_nonfinite: Any
    sharpness_every: Any = 1
    metrics_every: Any = 1

    def pack(self) -> np.ndarray:
        return np.array([self.count, self.first_step, self.term_every, int(bool(self.stop_on_nonfinite)),
                         self.sharpness_every, self.metrics_every], np.int32)

    @staticmethod
    def unpack(vector) -> "Counters":
        return Counters(vector[0], vector[1], vector[2], vector[3] > 0, vector[4], vector[5])

    SPEC = tf.TensorSpec((6,), tf.int32)


class Carry(NamedTuple):
    """A run's state inside the compiled loop, by part (see :class:`State`)."""

    trained: list
    fixed: list
    slots: list
    carried: Any


class Carried(NamedTuple):
    """What a run carries between the steps that measure it, as one vector: the metrics, the per-term probe, the
    sharpness (and its preconditioned form), and the eigenvectors the next measurement starts from."""

    metrics: Any
    probe: Any
    sharpness: Any
    vectors: Any

    @staticmethod
    def unpack(vector, layout: Layout) -> "Carried":
        return Carried(*tf.split(vector, list(layout.sizes)))

    def pack(self):
        return tf.concat([self.metrics, tf.reshape(self.probe, (-1,)), self.sharpness, self.vectors], 0)

    @property
    def columns(self):
        """The values recorded (every part but the eigenvectors)."""
        return tf.concat([self.metrics, tf.reshape(self.probe, (-1,)), self.sharpness], 0)


class StepInputs(NamedTuple):
    """What one step of a run reads: its state, its batch, the held-out sample, the chunk's numbers, the step's
    number and the per-term probe's period."""

    carry: Carry
    batch: Dataset
    evals: Dataset
    numbers: Numbers
    step: Any
    counters: Counters


@dataclass
class Gradients:
    """One step's forward and backward pass: the loss, its terms and the outputs, the update's gradients, the fixed
    values after the forward pass (a batch norm's moving statistics), and the terms' own gradients where taken."""

    loss: Any
    terms: dict
    out: Any
    grads: list
    moved: list
    term_grads: dict | None


class Step:
    """A structure's model, variables, record layout and compiled step (see the module's docstring)."""

    def __init__(self, demo: demos.Demo, settings: Mapping[str, Any]):
        self.demo = demo
        self.key = config.structure(demo.name, settings)
        # only the graph-shaping settings: numbers reach the step as tensors, in the order of hp_keys
        self.settings = dict(self.key[1:])
        self.hp_keys = tuple(demo.hyperparameter_keys(settings))
        with _BUILD_LOCK:  # Keras builds one model at a time
            self.model = demo.build(self.settings)
        trained = demo.extra_variables(self.settings)
        own_state = demo.extra_state(self.settings)
        self.extra = {name: keras.Variable(np.float32(v), name=name)
                      for name, v in {**trained, **own_state}.items()}
        self._extra_init = {**trained, **own_state}
        self.trained = list(self.model.trainable_weights) + [self.extra[n] for n in trained]
        self.fixed = list(self.model.non_trainable_weights) + [self.extra[n] for n in own_state]
        self.optimizer = optimizers.OPTIMIZERS[self.settings["optimizer"]]
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(self.model.trainable_weights):
            groups.setdefault(models.layer_of(w), []).append(i)
        for j, name in enumerate(trained):  # alpha, or the two log-variances, each a group of its own
            groups[name] = [len(self.model.trainable_weights) + j]
        self.groups = groups
        # "pcgrad" | "gradnorm": the update is built from the terms' own gradients
        mode = self.settings.get("alpha_mode")
        self.weighting = mode if mode in ("pcgrad", "gradnorm") else None
        self.probe = self.settings.get("term_grads", "off") if len(demo.term_names) > 1 else "off"
        self.curvature = self.settings.get("sharpness", "off")
        sharpness = () if self.curvature == "off" else (
            ("sharpness", "sharpness:preconditioned") if self.settings["optimizer"] in curvature.PRECONDITIONED
            else ("sharpness",))
        self.layout = Layout(
            terms=demo.term_names, layers=tuple(groups), metrics=demo.metrics_of(self.settings),
            has_alpha=demo.alpha is not None, variables=tuple(v.path for v in self.trained),
            probe_terms=demo.term_names if self.probe != "off" else (), sharpness=sharpness,
            weights=sum(int(np.prod(v.shape)) for v in self.trained))
        self.xla = XLA
        self.xla_error: str | None = None  # why this structure runs the plain step, when it does
        self.compile_seconds: float | None = None
        self._lock = threading.Lock()
        self._fn = None
        self._compiled: set[int] = set()  # the batch sizes compiled for
        self.traces = 0
        self._forward = None
        self._forward_lock = threading.Lock()
        self._ready = threading.Event()
        self._forward_mode = True  # Hessian-vector products forward over reverse, until an op has no forward rule
        self._sharpest_fn = None  # the landscape's direction of greatest curvature (sharpest), traced on first use

    # -- a run's state --------------------------------------------------------------------------------

    def initial_state(self, seed: int) -> State:
        """New weights from ``default_rng(seed)`` (Glorot-uniform kernels, zero biases), the loss's own variables
        at their starting values, zero slots, zero carried values."""
        values = dict(zip((id(w) for w in self.model.weights),
                          models.initial_values(self.model, seed, own=self.demo.own_initializers)))
        trained = [values[id(w)] for w in self.model.trainable_weights]
        trained += [np.float32(self._extra_init[v.name]) for v in self.trained[len(trained):]]
        fixed = [values[id(w)] for w in self.model.non_trainable_weights]
        fixed += [np.float32(self._extra_init[v.name]) for v in self.fixed[len(fixed):]]
        slots = self.optimizer.init([tuple(v.shape) for v in self.trained])
        return State(_pack_numpy(trained, fixed, slots, np.zeros(sum(self.layout.sizes), np.float32)), self.shapes)

    @property
    def shapes(self) -> tuple:
        """The shapes of the four parts of a state (see :class:`State`)."""
        trained = tuple(tuple(v.shape) for v in self.trained)
        slots = tuple(trained) * self.optimizer.slots_per_variable
        return trained, tuple(tuple(v.shape) for v in self.fixed), slots, ((sum(self.layout.sizes),),)

    def _unpack(self, values) -> Carry:
        """A state vector as its four parts of tensors, in the graph."""
        shapes = self.shapes
        sizes = [int(np.prod(shape)) for part in shapes for shape in part]
        pieces = tf.split(values, sizes) if sizes else []
        out, i = [], 0
        for part in shapes:
            out.append([tf.reshape(pieces[i + j], shape) for j, shape in enumerate(part)])
            i += len(part)
        return Carry(out[0], out[1], out[2], out[3][0])

    @staticmethod
    def _pack(carry: Carry):
        return tf.concat([tf.reshape(v, (-1,)) for v in list(carry.trained) + list(carry.fixed) + list(carry.slots)]
                         + [carry.carried], 0)

    def scope(self, trained, fixed) -> keras.StatelessScope:
        """The model's and the loss's variables reading a run's values."""
        return keras.StatelessScope(state_mapping=list(zip(self.trained, trained)) + list(zip(self.fixed, fixed)))

    # -- the loss -------------------------------------------------------------------------------------

    def context(self, out, inputs, targets, hp) -> demos.Context:
        """What the demo's loss and metrics see (inside a scope)."""
        return demos.Context(self.model, out, inputs, targets, hp, self.extra, self.settings)

    def loss_and_terms(self, inputs, targets, hp):
        """Forward pass (inside a scope): (total loss, dict of terms, outputs). Used by the step and the landscapes."""
        out = self.demo.forward(self.model, inputs, True)
        terms, total = self.demo.terms(self.context(out, inputs, targets, hp))
        return total, terms, out

    def _gradients(self, tape, target, trained) -> list:
        grads = tape.gradient(target, trained)
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, trained)]

    def term_gradients(self, trained, fixed, inputs, targets, hp) -> dict[str, list]:
        """Each term's gradient, on a forward pass of its own (the probe on the steps it measures)."""
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(trained)
            with self.scope(trained, fixed):
                _, terms, out = self.loss_and_terms(inputs, targets, hp)
                parts = self.demo.parts_of(terms, self.context(out, inputs, targets, hp))
        grads = {name: self._gradients(tape, parts[name], trained) for name in self.demo.term_names}
        del tape
        return grads

    def _own(self, fixed, name: str):
        """The value of the loss's own state variable ``name`` in a run's fixed values."""
        return tf.reshape(fixed[_position(self.fixed, self.extra[name])], ())

    def _weighted(self, term_grads: dict[str, list], terms, hp, fixed, lr) -> tuple[list, list]:
        """The update of a weighting mode from the terms' gradients, and the fixed values after it."""
        grads = list(term_grads.values())
        if self.weighting == "pcgrad":
            return gradients.pcgrad(grads), fixed
        # GradNorm: the parts are w_i L_i / 2, so |grad_W L_i| = 2 |grad_W part_i| / w_i on the shared layer W
        part_norms = tf.stack([gradients.norms(g, self.groups)[1][self.demo.shared_layer] for g in grads])
        weights = tf.stack([self._own(fixed, "gradnorm_w1"), self._own(fixed, "gradnorm_w2")])
        losses = tf.stack([tf.reshape(terms[t], ()) for t in self.demo.term_names])
        initial = tf.stack([self._own(fixed, "gradnorm_l0_1"), self._own(fixed, "gradnorm_l0_2")])
        initial = tf.where(initial > 0, initial, losses)  # step 1 sets L_i(0)
        new = gradients.gradnorm_weights(weights, 2.0 * part_norms / weights, losses, initial,
                                         hp["gradnorm_alpha"], tf.abs(lr))
        fixed = list(fixed)
        for name, value in (("gradnorm_w1", new[0]), ("gradnorm_w2", new[1]), ("gradnorm_l0_1", initial[0]),
                            ("gradnorm_l0_2", initial[1])):
            fixed[_position(self.fixed, self.extra[name])] = tf.reshape(value, self.extra[name].shape)
        return gradients.total(grads), fixed

    # -- the step, by role: gradients, probes, update, diagnostics ------------------------------------

    def _step(self, inp: StepInputs):
        """One training step of a run: the record's vector, the non-finite place code, and the run's new state."""
        taken = self._backward(inp)
        sums = gradients.group_squares(taken.grads, self.groups)  # per layer: the norms, and whether all is finite
        probe = self._probe(inp, taken)
        trained, slots = self._update(inp, taken.grads)
        sharpness, vectors = self._sharpness(inp, slots)
        return self._diagnostics(inp, taken, sums, probe, trained, slots, sharpness, vectors)

    def _backward(self, inp: StepInputs) -> Gradients:
        """The forward and backward pass. The terms' own gradients come from this tape when the update needs them or
        the probe measures every step; otherwise the probe takes them on a pass of its own, on the steps it
        measures."""
        carry, batch, hp = inp.carry, inp.batch, inp.numbers.hp
        together = self.weighting is not None or self.probe == "every"
        with tf.GradientTape(persistent=together) as tape:
            tape.watch(carry.trained)
            with self.scope(carry.trained, carry.fixed) as scope:
                loss, terms, out = self.loss_and_terms(batch.inputs, batch.targets, hp)
                parts = self.demo.parts_of(terms, self.context(out, batch.inputs, batch.targets, hp)) \
                    if together else None
        moved = [scope.get_current_value(v) for v in self.fixed]  # e.g. a batch norm's moving statistics
        term_grads = {name: self._gradients(tape, parts[name], carry.trained) for name in self.demo.term_names} \
            if together else None
        if self.weighting is not None:
            grads, moved = self._weighted(term_grads, terms, hp, moved, inp.numbers.lr)
        else:
            grads = self._gradients(tape, loss, carry.trained)
        del tape
        return Gradients(loss, terms, out, grads, moved, term_grads)

    def _probe(self, inp: StepInputs, taken: Gradients):
        """The per-term gradient probe's values (norms per layer, cosines), carried between the steps it measures:
        step 1 and every ``term_every``-th, before the update (tapes do not reach into a cond)."""
        last = Carried.unpack(inp.carry.carried, self.layout).probe
        if not self.layout.probe_terms:
            return last
        if self.probe == "every":
            return gradients.anatomy(taken.term_grads, self.groups)

        def measure():
            grads = taken.term_grads if taken.term_grads is not None else self.term_gradients(
                inp.carry.trained, inp.carry.fixed, inp.batch.inputs, inp.batch.targets, inp.numbers.hp)
            return gradients.anatomy(grads, self.groups)
        every = inp.counters.term_every
        return tf.cond(tf.logical_or(tf.equal(inp.step, 1), tf.equal(inp.step % every, 0)), measure, lambda: last)

    def _update(self, inp: StepInputs, grads):
        """Clipping, the optimizer's step, and a trainable alpha projected back into [0, 1]."""
        numbers = inp.numbers
        grads = _clip(grads, numbers.clipnorm, numbers.clipvalue)
        trained, slots = self.optimizer.update(grads, inp.carry.trained, inp.carry.slots, numbers.lr, inp.step - 1)
        if "alpha" in self.extra:  # projected gradient step: alpha stays in [0, 1]
            i = _position(self.trained, self.extra["alpha"])
            trained[i] = tf.clip_by_value(trained[i], 0.0, 1.0)
        return trained, slots

    def _sharpness(self, inp: StepInputs, slots):
        """The curvature probe (``curvature``): at step 1 and every k-th step, the largest eigenvalue of the Hessian
        of the step's loss (on its batch, at the weights its gradient was taken at) and, for Adam and RMSprop, of
        the Hessian preconditioned by this step's P; carried in between, with the eigenvectors the next
        measurement starts from."""
        last = Carried.unpack(inp.carry.carried, self.layout)
        if not self.layout.sharpness:
            return last.sharpness, last.vectors
        n = self.layout.weights
        hvp = self.hessian_product(inp.carry.trained, inp.carry.fixed, inp.batch.inputs, inp.batch.targets,
                                   inp.numbers.hp)
        count = len(self.trained)

        def measure():
            first = tf.equal(tf.reduce_sum(tf.abs(last.vectors[:n])), 0.0)  # nothing to start from yet
            iterations = tf.where(first, curvature.FIRST_ITERATIONS, curvature.WARM_ITERATIONS)
            fresh = tf.random.stateless_normal((n,), tf.stack([inp.step, 7]))

            def start(i):
                return tf.where(first, fresh, last.vectors[i * n:(i + 1) * n])

            tolerance = tf.where(first, curvature.TOLERANCE, curvature.WARM_TOLERANCE)

            def previous(i):
                return tf.where(first, np.float32(np.nan), last.sharpness[i])

            value, vector = curvature.largest(hvp, start(0), iterations, tolerance, previous(0))
            values, vectors = [value], [vector]
            if len(self.layout.sharpness) > 1:  # P^-1 H, through the symmetric P^-1/2 H P^-1/2 of the same spectrum
                root = tf.concat([tf.reshape(tf.math.rsqrt(p), (-1,)) for p in curvature.preconditioner(
                    self.settings["optimizer"], slots, count, inp.step)], 0)
                value, vector = curvature.largest(lambda v: root * hvp(root * v), start(1), iterations, tolerance,
                                                  previous(1))
                values.append(value)
                vectors.append(vector)
            return tf.stack(values), tf.concat(vectors, 0)

        every = inp.counters.sharpness_every
        return tf.cond(tf.logical_or(tf.equal(inp.step, 1), tf.equal(inp.step % every, 0)), measure,
                       lambda: (last.sharpness, last.vectors))

    def hessian_product(self, trained, fixed, inputs, targets, hp):
        """v -> H v for the Hessian of the loss on a batch at the weights ``trained`` (a flat vector of all trained
        values): forward over reverse, the derivative of the gradient along v (a forward-mode accumulator around
        the backward pass), measured 1.6x faster here than the gradient of <gradient, v> (a double backward), which
        it falls back to for a model with an op that has no forward-mode rule."""
        shapes = [tuple(v.shape) for v in self.trained]
        sizes = [int(np.prod(shape)) for shape in shapes]

        def pieces_of(v):
            return [tf.reshape(p, shape) for p, shape in zip(tf.split(v, sizes), shapes)]

        def gradient():
            with tf.GradientTape() as tape:
                tape.watch(trained)
                with self.scope(trained, fixed):
                    loss, _, _ = self.loss_and_terms(inputs, targets, hp)
            return self._gradients(tape, loss, trained)

        def forward_over_reverse(v):  # the derivative of the gradient along v
            with tf.autodiff.ForwardAccumulator(trained, pieces_of(v)) as acc:
                grads = gradient()
            return [acc.jvp(g, unconnected_gradients=tf.UnconnectedGradients.ZERO) for g in grads]

        def reverse_over_reverse(v):  # the gradient of <gradient, v>
            with tf.GradientTape() as outer:
                outer.watch(trained)
                grads = gradient()
                along = tf.add_n([tf.reduce_sum(g * p) for g, p in zip(grads, pieces_of(v))])
            return self._gradients(outer, along, trained)

        def product(v):
            if self._forward_mode:
                try:
                    found = forward_over_reverse(v)
                except LookupError as e:  # an op without a forward-mode rule (e.g. XlaDynamicUpdateSlice)
                    self._forward_mode = False
                    raise _Retrace from e  # trace again from scratch: no half-built ops left in the graph
            else:
                found = reverse_over_reverse(v)
            return tf.concat([tf.reshape(h, (-1,)) for h in found], 0)
        return product

    def sharpest(self, trained, fixed, inputs, targets, hp):
        """(the loss, its flat gradient, the largest Hessian eigenvalue, its unit eigenvector) on a batch at the
        weights ``trained``, the eigenvalue iterated to convergence from a fixed random start: the direction of
        greatest curvature the landscape draws. One traced function per structure, cached on the step."""
        if self._sharpest_fn is None:
            @tf.function(reduce_retracing=True)
            def sharpest(trained, fixed, inputs, targets, hp):
                with tf.GradientTape() as tape:
                    tape.watch(trained)
                    with self.scope(trained, fixed):
                        loss, _, _ = self.loss_and_terms(inputs, targets, hp)
                grad = tf.concat([tf.reshape(g, (-1,)) for g in self._gradients(tape, loss, trained)], 0)
                start = tf.random.stateless_normal((self.layout.weights,), (0, 7))
                value, vector = curvature.largest(self.hessian_product(trained, fixed, inputs, targets, hp), start,
                                                  curvature.DIRECTION_ITERATIONS, curvature.DIRECTION_TOLERANCE)
                return loss, grad, value, vector
            self._sharpest_fn = sharpest
        try:
            return self._sharpest_fn(trained, fixed, inputs, targets, hp)
        except Exception as e:  # traced with forward-mode products the model has no rule for: once more
            if not _caused_by(e, _Retrace):
                raise
            self._sharpest_fn = None
            return self.sharpest(trained, fixed, inputs, targets, hp)

    def _diagnostics(self, inp: StepInputs, taken: Gradients, sums, probe, trained, slots, sharpness, vectors):
        """The record: loss, terms, gradient norms, non-finite counts and their first place, alpha, the carried
        metrics and probes; and the run's new state."""
        global_norm, layer_norms = self._norms(sums)
        nonfinite, place = self._nonfinite(taken, sums, trained)
        metric_vector, alpha = self._after_update(inp, taken, trained)
        values = [taken.loss] + [taken.terms[t] for t in self.layout.terms] + [global_norm] + list(layer_norms.values())
        values += [tf.cast(nonfinite, tf.float32)] + alpha
        if self.layout.sharpness:  # the optimizer's limit at this step's lr
            values.append(curvature.limit_in_graph(self.settings["optimizer"], inp.numbers.lr))
        carried = Carried(metric_vector, probe, sharpness, vectors)
        vector = tf.concat([_vector(values), carried.columns], 0)
        return vector, tf.cast(place, tf.int32), Carry(trained, taken.moved, slots, carried.pack())

    def _norms(self, sums):
        """The gradient's global norm and its norm per layer, from its sums of squares per layer."""
        return gradients.norms_of(sums, self.groups)

    def _nonfinite(self, taken: Gradients, sums, trained):
        """The step's non-finite values in the loss, the gradients and the updated weights, and the place code of
        the first (``Layout.place``)."""
        loss_bad = tf.cast(tf.logical_not(tf.math.is_finite(taken.loss)), tf.int32)
        # one sum over every weight, not one a tensor: a NaN or inf anywhere makes it so
        weight_sum = tf.reduce_sum(tf.concat([tf.reshape(v, (-1,)) for v in trained], 0))
        n = len(self.trained)
        counts = _nonfinite_counts(list(taken.grads) + list(trained), tf.concat([sums, [weight_sum]], 0))
        grad_bad, weight_bad = counts[:n], counts[n:]
        grad_place = _last_true(grad_bad > 0)  # nearest the loss: backprop meets it first
        weight_place = _first_true(weight_bad > 0)
        place = tf.where(loss_bad > 0, 1, tf.where(grad_place >= 0, 2 + grad_place,
                                                   tf.where(weight_place >= 0, 2 + n + weight_place, 0)))
        return loss_bad + tf.reduce_sum(grad_bad) + tf.reduce_sum(weight_bad), place

    def _after_update(self, inp: StepInputs, taken: Gradients, trained):
        """The metrics and alpha after the update: on the held-out sample at step 1 and every ``metrics_every``-th
        step (carried in between), or on the step's batch for a demo without one."""
        hp, evals, batch = inp.numbers.hp, inp.evals, inp.batch
        last_metrics = Carried.unpack(inp.carry.carried, self.layout).metrics
        with self.scope(trained, taken.moved):
            if self.demo.metrics_on_eval:
                def measure_metrics():
                    out = self.demo.forward(self.model, evals.inputs, False)
                    found = self.demo.metrics(self.context(out, evals.inputs, evals.targets, hp))
                    return _vector([found[m] for m in self.layout.metrics])
                every = inp.counters.metrics_every
                metric_vector = tf.cond(tf.logical_or(tf.equal(inp.step, 1), tf.equal(inp.step % every, 0)),
                                        measure_metrics, lambda: last_metrics)
            else:
                found = self.demo.metrics(self.context(taken.out, batch.inputs, batch.targets, hp))
                metric_vector = _vector([found[m] for m in self.layout.metrics])
            ctx = self.context(taken.out, batch.inputs, batch.targets, hp)
            alpha = [self.demo.alpha(ctx)] if self.layout.has_alpha else []
        return metric_vector, alpha

    def _build(self, data, eval_set, jit: bool):
        """The fused function running ``count`` steps of a chunk (K, B) of batch indices into the run's data."""
        self.traces += 1
        width = len(self.layout.columns)
        width_nonfinite = self.layout.columns.index("nonfinite")

        def table(d):
            return {k: tf.TensorSpec((None,) + tuple(v.shape[1:]), tf.float32) for k, v in d.items()}

        # few arguments: binding each one costs the call time (the state and the numbers are one vector each)
        signature = [tf.TensorSpec((None,), tf.float32), table(data.inputs), table(data.targets),
                     table(eval_set.inputs), table(eval_set.targets), tf.TensorSpec((None, None), tf.int32),
                     Numbers.spec(self.hp_keys), Counters.SPEC]

        def run(values, inputs, targets, eval_inputs, eval_targets, idx, numbers, counters):
            numbers, counters = Numbers.unpack(numbers, self.hp_keys), Counters.unpack(counters)
            evals = Dataset(eval_inputs, eval_targets)
            size = tf.shape(idx)[0]
            vectors = tf.TensorArray(tf.float32, size=size, element_shape=(width,))
            places = tf.TensorArray(tf.int32, size=size, element_shape=())

            def body(i, seen, carry, vectors, places):
                batch = Dataset({k: tf.gather(v, idx[i]) for k, v in inputs.items()},
                                {k: tf.gather(v, idx[i]) for k, v in targets.items()})
                vector, place, carry = self._step(StepInputs(carry, batch, evals, numbers, counters.first_step + i,
                                                             counters))
                seen = tf.logical_or(seen, vector[width_nonfinite] > 0)
                return i + 1, seen, carry, vectors.write(i, vector), places.write(i, place)

            def cond(i, seen, *_):
                return tf.logical_and(i < counters.count, tf.logical_not(tf.logical_and(counters.stop_on_nonfinite,
                                                                                        seen)))

            # steps in order: one update before the next forward
            done, _, carry, vectors, places = tf.while_loop(
                cond, body, (tf.constant(0), tf.constant(False), self._unpack(values), vectors, places),
                parallel_iterations=1, maximum_iterations=size)
            return self._pack(carry), vectors.stack(), places.stack(), done

        # called as its concrete function: half the call time of the tf.function (no signature matching)
        return tf.function(run, input_signature=signature, jit_compile=jit).get_concrete_function()

    def run(self, state: State, data, eval_set, idx: np.ndarray, numbers: Numbers, counters: Counters
            ) -> tuple[State, np.ndarray, np.ndarray]:
        """``counters.count`` steps of the chunk of batch indices ``idx`` (CHUNK x batch size) into the run's ``data``
        (and ``eval_set``, datasets of tensors): the new state and the records' vectors and places.

        The first call of a batch size compiles (see ``_first_call``)."""
        args = (state.values, data.inputs, data.targets, eval_set.inputs, eval_set.targets, np.asarray(idx, np.int32),
                numbers.pack(self.hp_keys), counters.pack())
        batch = int(np.shape(idx)[1])
        if batch in self._compiled:
            out = self._call(args)
        else:  # one compile at a time: the runs that need the same one wait for it
            with self._lock:
                out = self._fn(*args) if batch in self._compiled else self._first_call(args, data, eval_set)
                self._compiled.add(batch)
        values, vectors, places, done = out
        done = int(done)
        return State(values, state.shapes), vectors.numpy()[:done], places.numpy()[:done]

    def _call(self, args):
        """The compiled function on a chunk's arguments, once compiled for their shapes: flattened in the signature's
        order and given straight to the concrete function (``_call_flat``), which skips matching them to the
        signature: 0.45 ms of a call's 0.76 ms here, 6% of a chunk on the dense net. The public call where this
        TensorFlow has no such method."""
        call = getattr(self._fn, "_call_flat", None)
        if call is None:
            return self._fn(*args)
        return call([tf.convert_to_tensor(a) for a in tf.nest.flatten(args)], self._fn.captured_inputs)

    def _traced(self, data, eval_set, jit: bool):
        """The step's function, traced again once with double-backward Hessian products when the model has an op
        without a forward-mode rule; its names fixed by the structure (``tracenames``: XLA's disk cache keys on
        them)."""
        with tracenames.deterministic((self.key, jit)):
            try:
                return self._build(data, eval_set, jit=jit)
            except Exception as e:  # autograph re-raises what a trace raised as its own error type
                if not _caused_by(e, _Retrace):
                    raise
                return self._build(data, eval_set, jit=jit)

    def _first_call(self, args, data, eval_set):
        """The first call for a batch size: trace (once), compile, run. A structure XLA cannot compile runs the
        plain step from here on (the step is pure: the failed call changed nothing)."""
        start = time.perf_counter()
        if self._fn is None:
            self._fn = self._traced(data, eval_set, self.xla)
        try:
            out = self._fn(*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as e:
            if not self.xla or self._compiled:
                raise
            self.xla, self.xla_error = False, _first_line(e)
            self._fn = self._traced(data, eval_set, False)
            out = self._fn(*args)
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - start
        _give_back_memory()
        self._ready.set()
        return out

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- the model at a run's state (prediction views, replays) ---------------------------------------

    def forward(self, state: State, inputs: Mapping[str, np.ndarray], training: bool = False) -> dict[str, np.ndarray]:
        """The model's outputs for ``inputs`` at a run's state, as numpy arrays (one traced function per structure
        and training mode, any number of rows)."""
        with self._forward_lock:
            if self._forward is None:
                def forward(trained, fixed, inputs, training):
                    with self.scope(trained, fixed):
                        return self.demo.forward(self.model, inputs, training)
                self._forward = {mode: tf.function(lambda t, f, x, mode=mode: forward(t, f, x, mode),
                                                   reduce_retracing=True) for mode in (False, True)}
        trained, fixed, _, _ = state.parts()
        out = self._forward[training](trained, fixed, {k: tf.convert_to_tensor(v, tf.float32) for k, v in inputs.items()})
        return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- the steps of this process

_BUILD_LOCK = threading.Lock()
_STEPS: "OrderedDict[tuple, Step]" = OrderedDict()
_STEPS_LOCK = threading.Lock()


def get(demo: demos.Demo, settings: Mapping[str, Any]) -> Step:
    """The step of these settings' structure: one per structure and process, built on first use."""
    key = config.structure(demo.name, settings)
    with _STEPS_LOCK:
        found = _STEPS.get(key)
        if found is None:
            found = _STEPS[key] = Step(demo, settings)
        _STEPS.move_to_end(key)
        while len(_STEPS) > MAX_STEPS:
            _STEPS.popitem(last=False)
        return found


def known() -> int:
    with _STEPS_LOCK:
        return len(_STEPS)


# ----------------------------------------------------------------------------- helpers (XLA-friendly: no dynamic shapes)

def _vector(values):
    """Scalars as one float32 vector (an empty list gives an empty vector)."""
    if not values:
        return tf.zeros((0,), tf.float32)
    return tf.stack([tf.reshape(tf.cast(v, tf.float32), ()) for v in values])


def _count_nonfinite(x):
    return tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.int32))


def _nonfinite_counts(values, sums):
    """The non-finite entries of each tensor, counted only when one of ``sums`` (sums over the tensors, of their
    entries or their squares, covering every entry) is not finite: a NaN or inf entry always makes its sum so, and
    a sum that overflows on finite entries only costs the exact count. Most steps have none, so they skip a pass
    over every tensor."""
    return tf.cond(tf.reduce_all(tf.math.is_finite(sums)), lambda: tf.zeros(len(values), tf.int32),
                   lambda: tf.stack([_count_nonfinite(v) for v in values]))


def _first_true(flags):
    """The index of the first true flag, -1 when none is."""
    return tf.where(tf.reduce_any(flags), tf.cast(tf.argmax(tf.cast(flags, tf.int32)), tf.int32), -1)


def _last_true(flags):
    """The index of the last true flag, -1 when none is."""
    n = tf.shape(flags)[0]
    return tf.where(tf.reduce_any(flags), n - 1 - tf.cast(tf.argmax(tf.cast(flags[::-1], tf.int32)), tf.int32), -1)


def _clip(grads, clipnorm, clipvalue):
    """Keras' ``clipnorm`` (each tensor to that norm) then ``clipvalue``; 0 turns either off (and costs nothing)."""
    grads = tf.cond(clipnorm > 0, lambda: [tf.clip_by_norm(g, tf.maximum(clipnorm, 1e-12)) for g in grads],
                    lambda: list(grads))
    return tf.cond(clipvalue > 0, lambda: [tf.clip_by_value(g, -clipvalue, clipvalue) for g in grads],
                   lambda: list(grads))


def _give_back_memory() -> None:
    """Return the heap XLA's compiler freed to the system (glibc keeps it otherwise: policy-value's compile
    leaves ~350 MiB of free heap in the process). Elsewhere, nothing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Retrace(Exception):
    """Raised while tracing: the Hessian-vector product must be traced again the other way (``hessian_product``)."""


def _caused_by(error: BaseException, kind: type) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


def _position(values, variable) -> int:
    """The index of ``variable`` in a list of variables (``==`` on Keras variables compares their values)."""
    return next(i for i, v in enumerate(values) if v is variable)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
