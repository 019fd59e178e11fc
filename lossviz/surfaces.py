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


CURVES: dict[str, Callable[[Mapping[str, Any]], list[Curve]]] = {
    "policy-value": policy_value_curves,
    "two-branch": two_branch_curves,
    "sparse-penalty": sparse_penalty_curves,
    "max-mse": max_mse_curves,
}


def curves(demo: str, settings: Mapping[str, Any]) -> list[Curve]:
    return CURVES[demo](settings)
