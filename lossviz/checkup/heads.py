"""The space the check-up probes: the loss as a function of the model's outputs on one batch.

Each output the loss reads is a *head*: a free pre-activation ``z`` and the outputs computed from it (a Dense
layer's own activation, or an ``Activation`` layer fed by another output, as the sparse net's probability is the
sigmoid of its logit output). Gradients are taken with respect to ``z``: what training feeds back into the
network. A model that is not a Keras functional graph has linear heads (its outputs themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import tensorflow as tf
import keras

from ..data import Dataset

KINDS = ("sigmoid", "softmax", "tanh", "linear")


@dataclass(frozen=True)
class Head:
    key: str  # the free value: a pre-activation, or an output that feeds others
    kind: str  # one of KINDS (how its edges are chosen)
    outputs: dict  # output key -> activation applied to z (None: the output is z itself)
    target: str | None  # the target it is compared with (same shape, same name where there is one)
    target_kind: str  # "binary" | "one-hot" | "distribution" | "real" | "none"

    @property
    def read(self) -> str:
        """The name a person reads: the output (the probability, not its logit)."""
        named = [k for k, act in self.outputs.items() if act is not None]
        return (named or [self.key])[0]


def _kind(activation) -> str:
    name = getattr(activation, "__name__", "")
    return name if name in ("sigmoid", "softmax", "tanh") else "linear"


def _symbolic(demo, model) -> dict[str, Any] | None:
    """The model's outputs as symbolic tensors under the flat names the loss reads (``Demo.symbolic_outputs``, or
    the model's own dict of outputs), or None."""
    if demo.symbolic_outputs is not None:
        return demo.symbolic_outputs(model)
    try:
        out = model.output
    except (AttributeError, ValueError):
        return None
    return dict(out) if isinstance(out, Mapping) else None


def classes(y: np.ndarray) -> np.ndarray:
    """A target's values as rows over its last axis (a sample's, a pixel's, a time step's classes); a target of one
    number a sample as one column."""
    y = np.asarray(y)
    return y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y.reshape(-1, 1)


def target_kind(y: np.ndarray) -> str:
    y = np.asarray(y, np.float64)
    if not np.isfinite(y).all():
        return "real"
    rows = classes(y)
    if np.isin(y, (0.0, 1.0)).all():
        return "one-hot" if rows.shape[1] > 1 and np.allclose(rows.sum(axis=1), 1.0) else "binary"
    if rows.shape[1] > 1 and (y >= 0).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4):
        return "distribution"
    return "real"


def _place(key: str, prefix: str) -> str:
    """Where a flat name sits in its structure: ``y_pred:policy`` -> ``:policy``, ``y_pred1`` -> ``1``."""
    return key[len(prefix):] if key.startswith(prefix) else key.rpartition(":")[2]


def _match(key: str, shape: tuple, targets: Mapping[str, np.ndarray]) -> str | None:
    """The target of an output: of its shape, and at the same place of the structure (the same dict key or list
    index) where several have that shape."""
    same = [k for k, v in targets.items() if tuple(v.shape[1:]) == shape]
    place = _place(key, "y_pred")
    named = [k for k in same if _place(k, "y") == place or k.rpartition(":")[2] == key.rpartition(":")[2]]
    if named:
        return named[0]
    return same[0] if len(same) == 1 else None


def heads_of(demo, model, out: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]) -> list[Head]:
    """The heads of a model whose outputs on a batch are ``out``."""
    symbolic = _symbolic(demo, model) or {}
    by_id = {id(t): k for k, t in symbolic.items()}
    tied: dict[str, dict] = {}
    kinds: dict[str, tuple[str, Any]] = {}
    for key, tensor in symbolic.items():
        op = tensor._keras_history.operation
        activation = getattr(op, "activation", None)
        inputs = op._inbound_nodes[tensor._keras_history.node_index].input_tensors
        source = by_id.get(id(inputs[0])) if isinstance(op, keras.layers.Activation) and len(inputs) == 1 else None
        if source is not None:
            tied.setdefault(source, {})[key] = activation
            kinds[source] = (_kind(activation), None)
        elif activation is not None and _kind(activation) != "linear":
            kinds.setdefault(key, (_kind(activation), activation))
    heads = []
    fed = {k for sources in tied.values() for k in sources}
    for key in out:
        if key in fed:
            continue
        kind, activation = kinds.get(key, ("linear", None))
        outputs = {key: activation} if key not in tied else {key: None, **tied[key]}
        target = _match(key, tuple(np.shape(out[key])[1:]), targets)
        heads.append(Head(key, kind, outputs, target, target_kind(targets[target]) if target else "none"))
    return heads


# ----------------------------------------------------------------------------- between outputs and z

def to_z(head: Head, values: np.ndarray) -> np.ndarray:
    """The pre-activation giving a head's output ``values`` (its own output when it has no activation)."""
    if head.outputs.get(head.key, "own") is None:
        return np.asarray(values, np.float32)  # the free value is an output itself
    v = np.asarray(values, np.float64)
    if head.kind == "sigmoid":
        v = np.clip(v, 1e-12, 1 - 1e-7)
        return (np.log(v) - np.log1p(-v)).astype(np.float32)
    if head.kind == "softmax":
        return np.log(np.clip(v, 1e-30, None)).astype(np.float32)
    if head.kind == "tanh":
        return np.arctanh(np.clip(v, -1 + 1e-7, 1 - 1e-7)).astype(np.float32)
    return v.astype(np.float32)


def perfect_z(head: Head, y: np.ndarray) -> list[np.ndarray]:
    """Pre-activations whose outputs equal the targets ``y`` (saturated at +-1e4 for 0/1 targets); for a linear
    head both ``z = y`` and, for probability targets, ``z = log y`` (logits of the target distribution)."""
    y = np.asarray(y, np.float64)
    if head.kind == "sigmoid":
        if head.target_kind in ("binary", "one-hot"):
            return [np.where(y > 0.5, 1e4, -1e4).astype(np.float32)]
        return [_logit(y)]
    if head.kind == "softmax":
        return [np.where(y > 0, np.log(np.clip(y, 1e-30, None)), -1e4).astype(np.float32)
                if head.target_kind != "one-hot" else (1e4 * y).astype(np.float32)]
    if head.kind == "tanh":
        return [np.arctanh(np.clip(y, -1 + 1e-7, 1 - 1e-7)).astype(np.float32)]
    found = [y.astype(np.float32)]
    if head.target_kind in ("one-hot", "distribution", "binary") and y.ndim == 2 and y.shape[1] > 1:
        found.append(np.where(y > 0, np.log(np.clip(y, 1e-30, None)), -1e4).astype(np.float32))
    return found


def _logit(y):
    y = np.clip(y, 1e-7, 1 - 1e-7)
    return (np.log(y) - np.log1p(-y)).astype(np.float32)


# ----------------------------------------------------------------------------- the loss on given outputs

@dataclass
class Value:
    total: float
    terms: dict[str, float]
    grads: dict[str, np.ndarray]  # head key -> d total / d z, per sample, times the batch size


class LossAt:
    """The loss of a run's structure at given weights, on a batch, as a function of its heads' values."""

    def __init__(self, trainer, batch: Dataset):
        self.trainer, self.step = trainer, trainer.compiled
        self.batch = batch
        self.state = trainer.state
        out = trainer.forward(batch.inputs, training=False)
        self.out = {k: np.asarray(v, np.float32) for k, v in out.items()}
        self.heads = heads_of(trainer.demo, self.step.model, self.out, batch.targets)
        self.z0 = {h.key: to_z(h, self.out[h.key]) for h in self.heads}

    def head(self, key: str) -> Head:
        return next(h for h in self.heads if h.key == key)

    def __call__(self, z: Mapping[str, np.ndarray] | None = None, rows=None, raw: Mapping[str, np.ndarray] | None = None
                 ) -> Value:
        """The loss with the heads at ``z`` (the others at the model's own values), on the batch's ``rows``;
        ``raw`` sets outputs directly, past their activation (for the rays beyond an output's range)."""
        rows = np.arange(len(self.batch)) if rows is None else np.asarray(rows)
        batch = self.batch.take(rows)
        z = {**self.z0, **(z or {})}
        zt = {k: tf.constant(np.asarray(v, np.float32)[rows] if len(np.shape(v)) and np.shape(v)[0] == len(self.batch)
                             else np.broadcast_to(np.float32(v), (len(rows),) + self.z0[k].shape[1:]))
              for k, v in z.items()}
        trained, fixed, _, _ = self.state.parts()
        with tf.GradientTape() as tape:
            tape.watch(list(zt.values()))
            with self.step.scope(trained, fixed):
                out = {k: tf.constant(v[rows]) for k, v in self.out.items()}
                for h in self.heads:
                    for key, act in h.outputs.items():
                        out[key] = zt[h.key] if act is None else act(zt[h.key])
                for key, v in (raw or {}).items():
                    out[key] = tf.constant(np.asarray(v, np.float32)[rows])
                inputs = {k: tf.constant(v) for k, v in batch.inputs.items()}
                targets = {k: tf.constant(v) for k, v in batch.targets.items()}
                terms, total = self.trainer.demo.terms(self.step.context(out, inputs, targets, self.trainer.hp))
        grads = tape.gradient(total, zt)
        n = len(rows)
        return Value(float(total), {k: float(v) for k, v in terms.items()},
                     {k: (np.zeros(zt[k].shape, np.float32) if g is None else np.asarray(g) * n) for k, g in grads.items()})
