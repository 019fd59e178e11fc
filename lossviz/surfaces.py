"""Analytic loss curves and surfaces over a loss's own inputs, for given settings.

Every curve is computed with the very loss functions of :mod:`lossviz.losses`, and its derivative with
automatic differentiation, so saturation (a flat clipped region) and blow-up (inverse MSE near a zero
residual, the unclipped log near p = 0 or 1) show as they are. Non-finite values are kept, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from . import losses
from . import settings as config, usercode


@dataclass(frozen=True)
class Curve:
    name: str
    x: np.ndarray
    y: np.ndarray  # may hold inf / nan: kept on purpose
    dy: np.ndarray  # d loss / d x
    x_label: str


@dataclass(frozen=True)
class Surface:
    name: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray  # shape (len(y), len(x))
    x_label: str
    y_label: str


def _curve(name: str, x: np.ndarray, fn: Callable, x_label: str) -> Curve:
    xt = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        y = fn(xt)
    dy = tape.gradient(y, xt)
    dy = np.zeros_like(x) if dy is None else np.asarray(dy)
    return Curve(name, x, np.asarray(y, dtype=np.float64), dy.astype(np.float64), x_label)


def probability_grid(n: int = 401) -> np.ndarray:
    """p in [0, 1], dense near both ends (logit-spaced), with exactly 0 and 1 included."""
    inner = 1.0 / (1.0 + np.exp(-np.linspace(-9.0, 9.0, n - 2)))
    return np.concatenate([[0.0], inner, [1.0]])


def sparse_penalty_curves(settings: Mapping[str, Any]) -> list[Curve]:
    """Per-sample loss for a positive (y = 1) and a negative (y = 0): over the predicted probability p, or
    over the logit for the ``logits`` variant (which never forms p, so it has no edge to fall off)."""
    variant, penalty, eps = settings["variant"], float(settings["penalty"]), float(settings["epsilon"])
    x = np.linspace(-20.0, 20.0, 401) if variant == "logits" else probability_grid()

    def loss_for(y: float):
        def fn(v):
            col, target = v[:, None], np.full((len(x), 1), y, np.float32)
            if variant == "naive":
                return losses.naive_sparse_penalty_bce(target, col, penalty)
            if variant == "logits":
                return losses.sparse_penalty_bce(target, col, penalty, eps, from_logits=True)
            if variant == "batch-switch":  # a batch of one: it holds a positive exactly when y = 1
                return losses.batch_switch_penalty_bce(target, col, penalty, eps)
            return losses.sparse_penalty_bce(target, col, penalty, eps)
        return fn

    label = "logit of p" if variant == "logits" else "predicted probability p"
    return [_curve(f"y = {y:g}", x, loss_for(y), label) for y in (1.0, 0.0)]


def max_mse_curves(settings: Mapping[str, Any]) -> list[Curve]:
    """MSE, -MSE and the inverse MSE over the residual r = y_pred - y_true."""
    eps = float(settings["epsilon"])
    r = np.linspace(-1.0, 1.0, 401)
    r[np.argmin(np.abs(r))] = 0.0  # the exact zero residual, where 1/r^2 blows up when epsilon = 0
    zero = np.zeros((len(r), 1), np.float32)
    return [
        _curve("MSE (neg-lr ascends it)", r, lambda x: losses.mse(zero, x[:, None]), "residual r"),
        _curve("-MSE (neg-mse)", r, lambda x: losses.negative_mse(zero, x[:, None]), "residual r"),
        _curve(f"1/(r^2 + {eps:g}) (inverse-mse)", r, lambda x: losses.inverse_mse(zero, x[:, None], eps),
               "residual r"),
    ]


def policy_value_curves(settings: Mapping[str, Any], moves: int = 8, legal: int = 3) -> list[Curve]:
    """The policy term over the logit of the target move (other legal logits 0, illegal logits 2), with
    the demo's mask mode, and the value term over v for z = 1."""
    gap = np.linspace(-10.0, 10.0, 401)
    mask = np.zeros((len(gap), moves), np.float32)
    mask[:, :legal] = 1.0
    pi = np.zeros_like(mask)
    pi[:, 0] = 1.0
    mode = settings["mask"]

    def policy(x):
        logits = tf.concat([x[:, None], tf.zeros((len(gap), legal - 1)), tf.fill((len(gap), moves - legal), 2.0)], 1)
        if mode == "seed-answer":
            return losses.pi_equals_one_policy_loss(pi, tf.nn.softmax(logits))
        used = mask if mode == "logits" else np.ones_like(mask)
        return losses.policy_value_terms(pi, logits, used, np.zeros(len(gap)), np.zeros(len(gap)))["policy"]

    v = np.linspace(-1.0, 1.0, 201)
    return [
        _curve(f"policy term, mask={mode}", gap, policy, "logit of the target move"),
        _curve("value term (z = 1)", v, lambda x: tf.square(1.0 - x), "predicted value v"),
    ]


def two_branch_surface(settings: Mapping[str, Any], n: int = 61) -> Surface:
    """``alpha L1 + (1 - alpha) L2`` over (L1, L2) for the current alpha (0.5 for a learned alpha)."""
    alpha = settings["alpha"]
    alpha = 0.5 if isinstance(alpha, str) else float(alpha)
    l1 = np.linspace(0.0, 4.0, n)
    l2 = np.linspace(0.0, 1.0, n)
    grid_1, grid_2 = np.meshgrid(l1, l2)
    z = np.asarray(losses.weighted_two_branch(grid_1, grid_2, alpha))
    return Surface(f"alpha = {alpha:g}", l1, l2, z, "L1 (regression MSE)", "L2 (classification CE)")


def two_branch_curves(settings: Mapping[str, Any]) -> list[Curve]:
    """The total loss over alpha for L1 = 2, L2 = 0.5: linear in alpha, so minimising over alpha ends at a bound."""
    a = np.linspace(0.0, 1.0, 101)
    return [_curve("alpha*2.0 + (1-alpha)*0.5", a, lambda x: losses.weighted_two_branch(2.0, 0.5, x), "alpha")]


def custom_curves(settings: Mapping[str, Any]) -> list[Curve]:
    """A formula's per-sample loss and its derivative: over p (or over the logit z when it reads z and not p)
    for y = 1 and y = 0, or over the residual r for a regression formula."""
    found = config.formula_of(settings)
    loss = found.compile()
    params = {k: tf.constant(float(settings[k]), tf.float32) for k in found.parameters}

    def binary(y: float, over_logit: bool):
        def fn(x):
            col = x[:, None]
            z = col if over_logit else tf.math.log(col) - tf.math.log1p(-col)
            p = tf.sigmoid(col) if over_logit else col
            return loss({"y": tf.fill(tf.shape(col), y), "p": p, "z": z}, params)
        return fn

    if found.task == "regression":
        r = np.linspace(-1.0, 1.0, 401)
        r[np.argmin(np.abs(r))] = 0.0
        return [_curve("y = 0", r, lambda x: loss({"y": tf.zeros((len(r), 1)), "yhat": x[:, None], "r": x[:, None]},
                                                 params), "residual r")]
    over_logit = "z" in found.inputs and "p" not in found.inputs
    x = np.linspace(-20.0, 20.0, 401) if over_logit else probability_grid()
    label = "logit z" if over_logit else "predicted probability p"
    return [_curve(f"y = {y:g}", x, binary(y, over_logit), label) for y in (1.0, 0.0)]


CURVES: dict[str, Callable[[Mapping[str, Any]], list[Curve]]] = {
    "policy-value": policy_value_curves,
    "two-branch": two_branch_curves,
    "sparse-penalty": sparse_penalty_curves,
    "max-mse": max_mse_curves,
    "custom": custom_curves,
}


def curves(demo: str, settings: Mapping[str, Any]) -> list[Curve]:
    """The demo's per-sample loss over its input (none for a file with a model of its own: its inputs are its)."""
    if demo in CURVES:
        return CURVES[demo](settings)
    return file_curves(usercode.load(demo), settings)


def file_curves(code, settings: Mapping[str, Any]) -> list[Curve]:
    """A file's loss (the sum of its terms) over the prediction, on the custom demo's net: over p for y = 1 and
    y = 0, or over the prediction for y = 0.5 (regression). None for its own model, or a loss that reduces the
    batch to one number."""
    if code.own_model or code.loss.per_sample is None:
        return []
    knobs = {k: tf.constant(float(settings[k]), tf.float32) for k in code.loss.knobs}
    per_sample_loss = code.loss.per_sample(code.knob_values(knobs, settings))

    def fn(y: float):
        def per_sample(x):
            col = x[:, None]
            found = per_sample_loss(tf.fill(tf.shape(col), y), col)
            values = found.values() if isinstance(found, Mapping) else [found]
            return sum(tf.reshape(tf.convert_to_tensor(v, tf.float32), (-1,)) for v in values)
        return per_sample

    if settings.get("task", "binary") == "binary":
        x, label, ys = probability_grid(), "predicted probability p", (1.0, 0.0)
    else:
        x, label, ys = np.linspace(-0.5, 1.5, 401), "prediction (target 0.5)", (0.5,)
    try:
        found = [_curve(f"y = {y:g}", x, fn(y), label) for y in ys]
    except (ValueError, TypeError, tf.errors.InvalidArgumentError):
        return []
    return found if all(c.y.shape == x.shape for c in found) else []


def surface(demo: str, settings: Mapping[str, Any]) -> Surface | None:
    """The demo's 2-D surface over two inputs of its loss, where it has one."""
    builder = {"two-branch": two_branch_surface, "policy-value": policy_value_surface}.get(demo)
    return builder(settings) if builder else None


def policy_value_surface(settings: Mapping[str, Any], n: int = 61) -> Surface:
    """The per-sample policy/value loss over (value error z - v, logit gap of the target move), 3 legal moves."""
    err = np.linspace(-2.0, 2.0, n)
    gap = np.linspace(-8.0, 8.0, n)
    grid_e, grid_g = np.meshgrid(err, gap)
    logits = np.zeros((grid_g.size, 3), np.float32)
    logits[:, 0] = grid_g.ravel()
    pi = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (grid_g.size, 1))
    z = grid_e.ravel().astype(np.float32)
    loss = np.asarray(losses.policy_value_loss(pi, logits, np.ones_like(pi), z, np.zeros_like(z)))
    return Surface("one target move among 3 legal", err, gap, loss.reshape(grid_g.shape), "value error z - v",
                   "logit gap of the target move")


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

    def __init__(self, trainer, samples: int = 128, points_per_call: int = 256):
        self.compiled = trainer.compiled
        self.fixed = list(trainer.state.fixed)
        self.batch = trainer.eval_set.take(slice(0, samples))
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
                _, total = compiled.demo.terms(compiled.model, out, (inputs, targets), hp, compiled.extra,
                                               compiled.settings)
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


def _check_resolution(resolution: int) -> None:
    if not 2 <= resolution <= 201:
        raise ValueError(f"resolution must be an integer from 2 to 201, got {resolution}")
