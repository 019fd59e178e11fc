"""The loss a page draws: over its own input (each demo declares its curves and surfaces, ``Demo.curves``), and the
landscape of a trained model's loss around its weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from . import catalog, curvature, settings as config
from .curves import Curve, Surface, probability_grid  # noqa: F401  (the figures' types, drawn by charts)
from .demos import two_branch


def curves(demo: str, settings: Mapping[str, Any]) -> list[Curve]:
    """The demo's per-sample loss over its input and its derivative (none for a file with a model of its own: its
    inputs are its)."""
    found = catalog.get(demo).curves
    return found(settings) if found is not None else []


def surface(demo: str, settings: Mapping[str, Any]) -> Surface | None:
    """The demo's 2-D surface over two inputs of its loss, where it has one."""
    found = catalog.get(demo).surface
    return found(settings) if found is not None else None


two_branch_surface = two_branch.surface


# ----------------------------------------------------------------------------- the trained model's landscape
#
# Li, Xu, Taylor, Studer, Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets": the loss on a
# plane through the trained weights, spanned by two random directions normalised filter by filter, and the
# training trajectory projected on the top two PCA directions of the weight snapshots. Goodfellow, Vinyals,
# Saxe (2015): the loss along the straight line from the initial to the final weights.


@dataclass(frozen=True)
class Landscape:
    alpha: np.ndarray  # coordinates along the first direction
    beta: np.ndarray  # along the second
    loss: np.ndarray  # (len(beta), len(alpha)); non-finite values kept
    kind: str  # "random" (filter-normalised) or "pca"
    trajectory: np.ndarray | None = None  # (T, 2) coordinates of the weight snapshots
    trajectory_steps: np.ndarray | None = None
    explained: tuple[float, float] | None = None  # PCA variance ratios

    def rows(self):
        """``(alpha, beta, loss)`` per grid point, alpha varying fastest."""
        for j, b in enumerate(self.beta):
            for i, a in enumerate(self.alpha):
                yield {"alpha": float(a), "beta": float(b), "loss": float(self.loss[j, i])}


def filter_normalized_direction(weights: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A Gaussian direction with each filter rescaled to the norm of the matching weight filter.

    A filter is a slice along the last axis (a conv output channel, a dense output unit). One-dimensional
    weights (biases) and scalars get a zero direction, as in Li et al.'s default for biases.
    """
    direction = []
    for w in weights:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim <= 1:
            direction.append(np.zeros(w.shape, np.float32))
            continue
        d = rng.standard_normal(w.shape)
        axes = tuple(range(w.ndim - 1))
        w_norm = np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True))
        d_norm = np.sqrt(np.sum(d ** 2, axis=axes, keepdims=True))
        direction.append((d * w_norm / np.maximum(d_norm, 1e-12)).astype(np.float32))
    return direction


def _flat(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in values]).astype(np.float64)


def _unflat(vector: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, i = [], 0
    for v in like:
        n = int(np.prod(np.shape(v)))
        out.append(vector[i:i + n].reshape(np.shape(v)).astype(np.float32))
        i += n
    return out


class LossGrid:
    """The loss of a trainer's model at ``center + a * d1 + b * d2`` for many (a, b) per compiled call.

    Each call evaluates up to ``points_per_call`` grid points with ``tf.vectorized_map``; the trained values are
    substituted through ``keras.StatelessScope`` (the run's other values as they are). The loss is the demo's
    total loss on the first ``samples`` rows of the run's fixed evaluation sample.
    """

    def __init__(self, trainer, samples: int = 128, points_per_call: int = 256, batch=None):
        self.compiled = trainer.compiled
        self.fixed = list(trainer.state.fixed)
        self.batch = trainer.eval_set.take(slice(0, samples)) if batch is None else batch
        self.hp = trainer.hp
        self.points_per_call = points_per_call
        self._fn = _grid_function(self.compiled)

    def __call__(self, center, d1, d2, coords: np.ndarray, on_progress: Callable[[float], None] | None = None):
        as_tensors = lambda values: [tf.constant(v, tf.float32) for v in values]  # noqa: E731
        center, d1, d2 = as_tensors(center), as_tensors(d1), as_tensors(d2)
        coords = np.asarray(coords, np.float32).reshape(-1, 2)
        out = []
        for start in range(0, len(coords), self.points_per_call):
            chunk = coords[start:start + self.points_per_call]
            padded = np.repeat(chunk, 2, axis=0) if len(chunk) == 1 else chunk  # pfor fails on one point
            values = self._fn(center, d1, d2, tf.constant(padded), self.fixed, self.batch.inputs,
                              self.batch.targets, self.hp)
            out.append(values.numpy()[: len(chunk)])
            if on_progress:
                on_progress(min((start + len(chunk)) / len(coords), 1.0))
        return np.concatenate(out).astype(np.float64)

    def loss_at(self, weights) -> float:
        """The same loss at one set of weights (the grid's centre value, for checks)."""
        zeros = [np.zeros_like(w) for w in weights]
        return float(self(weights, zeros, zeros, np.zeros((1, 2)))[0])


def _grid_function(compiled):
    """One traced function per structure (cached on its step): shapes are fixed by the structure's model."""
    if getattr(compiled, "_grid_fn", None) is not None:
        return compiled._grid_fn

    @tf.function(reduce_retracing=True)
    def grid(center, d1, d2, coords, fixed, inputs, targets, hp):
        def loss_at(ab):
            values = [c + ab[0] * x + ab[1] * y for c, x, y in zip(center, d1, d2)]
            with compiled.scope(values, fixed):
                out = compiled.demo.forward(compiled.model, inputs, False)
                _, total = compiled.demo.terms(compiled.context(out, inputs, targets, hp))
            return tf.cast(tf.reshape(total, ()), tf.float32)

        # convolutions with per-point filters fall back to a loop inside the graph; the rest is vectorised
        return tf.vectorized_map(loss_at, coords, fallback_to_while_loop=True)

    compiled._grid_fn = grid
    return grid


def _square_grid(resolution: int, low_a, high_a, low_b, high_b):
    alpha = np.linspace(low_a, high_a, resolution)
    beta = np.linspace(low_b, high_b, resolution)
    grid_a, grid_b = np.meshgrid(alpha, beta)
    return alpha, beta, np.stack([grid_a.ravel(), grid_b.ravel()], axis=1)


def random_landscape(trainer, resolution: int = 41, span: float = 1.0, seed: int = 0, samples: int = 128,
                     on_progress=None) -> Landscape:
    """The loss on ``[-span, span]^2`` around the current weights, along two filter-normalised random
    directions drawn from ``default_rng(seed)``."""
    _check_resolution(resolution)
    center = trainer.weights()
    rng = np.random.default_rng(seed)
    d1, d2 = filter_normalized_direction(center, rng), filter_normalized_direction(center, rng)
    alpha, beta, coords = _square_grid(resolution, -span, span, -span, span)
    loss = LossGrid(trainer, samples)(center, d1, d2, coords, on_progress)
    return Landscape(alpha, beta, loss.reshape(resolution, resolution), "random")


def trajectory_landscape(trainer, resolution: int = 41, margin: float = 0.25, samples: int = 128,
                         on_progress=None) -> Landscape:
    """The loss on the plane of the top two PCA directions of ``w_i - w_final`` over the weight snapshots,
    centred on the final weights, with the snapshots projected on it (the training path)."""
    _check_resolution(resolution)
    final = trainer.weights()
    steps = np.array([s for s, _ in trainer.snapshots])
    diffs = np.stack([_flat(w) - _flat(final) for _, w in trainer.snapshots])
    if len(diffs) < 3 or not np.all(np.isfinite(diffs)):
        raise ValueError("the trajectory needs at least 3 finite weight snapshots: train longer, without NaN")
    _, singular, vt = np.linalg.svd(diffs, full_matrices=False)
    directions = vt[:2]
    path = diffs @ directions.T
    variance = singular ** 2
    explained = tuple(float(v) for v in variance[:2] / variance.sum())
    low, high = path.min(axis=0), path.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-3)
    alpha, beta, coords = _square_grid(resolution, low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])
    d1, d2 = _unflat(directions[0], final), _unflat(directions[1], final)
    loss = LossGrid(trainer, samples)(final, d1, d2, coords, on_progress)
    return Landscape(alpha, beta, loss.reshape(resolution, resolution), "pca", path, steps, explained)


def interpolation(trainer, points: int = 41, low: float = -0.25, high: float = 1.25, samples: int = 128) -> Curve:
    """The loss along ``(1 - t) w_initial + t w_final`` (Goodfellow, Vinyals, Saxe 2015)."""
    start, end = trainer.initial_weights, trainer.weights()
    direction = [e - s for s, e in zip(start, end)]
    zeros = [np.zeros_like(w) for w in start]
    t = np.linspace(low, high, points)
    loss = LossGrid(trainer, samples)(start, direction, zeros, np.stack([t, np.zeros_like(t)], axis=1))
    return Curve("initial -> final", t, loss, np.gradient(loss, t), "t (0 = initial, 1 = final weights)")


@dataclass(frozen=True)
class SharpestLine:
    """The loss along the direction of greatest curvature through a run's weights, ``w + t v`` with v the top
    Hessian eigenvector, and one gradient step at the run's lr seen along it."""
    t: np.ndarray
    loss: np.ndarray
    quadratic: np.ndarray  # loss(0) + g t + sharpness t^2 / 2: the second-order model the limit is derived from
    sharpness: float
    slope: float  # g = <gradient, v>
    lr: float
    step: float  # where one plain gradient step from t = 0 lands along v: -lr g
    limit: float  # 2/lr, the limit of the plain gradient step drawn (Adam's and RMSprop's are for P^-1 H)
    rows: int  # the batch the loss is on: the run's training set for batch_size=full, else its first batch
    start: float  # a point up the side, t = -half/2, and where one gradient step at lr from it lands along v:
    landing: float  # inside the valley when lr x sharpness < 2, across it (overshoot) when > 2


def sharpest_line(trainer, points: int = 61) -> SharpestLine:
    """The loss along the top Hessian eigenvector through the trained weights, on a batch of the size the run
    trains on (its first rows), over a range wide enough to show both the step at lr and the curvature: a step
    overshoots the minimum of the quadratic model when lr x sharpness > 2, and lands further up when it is > 4."""
    step = trainer.compiled
    batch = trainer.data.take(slice(0, trainer.batch))
    weights = trainer.weights()
    loss, grad, value, vector = step.sharpest([tf.constant(w, tf.float32) for w in weights],
                                              list(trainer.state.fixed), batch.inputs, batch.targets, trainer.hp)
    loss, sharpness, v = float(loss), float(value), vector.numpy().astype(np.float64)
    slope = float(np.dot(grad.numpy(), v))
    if slope > 0:  # the eigenvector's sign is arbitrary: point it downhill, the way the step goes
        v, slope = -v, -slope
    lr = float(config.effective_lr(trainer.demo.name, trainer.settings))
    moved = -lr * slope
    reach = math.sqrt(2 * max(abs(loss), 1e-6) / sharpness) if sharpness > 0 else 1.0  # where t^2 s/2 = the loss
    half = max(1.5 * abs(moved), reach)
    t = np.linspace(-half, half, points)
    direction = _unflat(v, weights)
    zeros = [np.zeros_like(w) for w in weights]
    grid = LossGrid(trainer, batch=batch)
    values = grid(weights, direction, zeros, np.stack([t, np.zeros_like(t)], axis=1))
    start = -half / 2
    landing = start - lr * float(np.interp(start, t, np.gradient(values, t)))
    return SharpestLine(t, values, loss + slope * t + 0.5 * sharpness * t ** 2, sharpness, slope, lr, moved,
                        curvature.limit("sgd", lr), len(batch), start, landing)


def _check_resolution(resolution: int) -> None:
    if not 2 <= resolution <= 201:
        raise ValueError(f"resolution must be an integer from 2 to 201, got {resolution}")
