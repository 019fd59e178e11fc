"""A loss over its own input and its derivative (autodiff of the very loss functions), and 2-D surfaces over two
of its inputs: what a demo's page draws before any training.

Saturation (a flat clipped region) and blow-up (inverse MSE near a zero residual, the unclipped log near p = 0 or
1) show as they are: non-finite values are kept, not dropped. Each demo declares its own curves (``Demo.curves``)
with these helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf


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


def curve(name: str, x: np.ndarray, fn: Callable, x_label: str) -> Curve:
    """``fn`` over the points ``x`` (one tensor of them) and its derivative there."""
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


def residual_grid(n: int = 401) -> np.ndarray:
    """r in [-1, 1] with the exact zero residual (where 1/r^2 blows up) among the points."""
    r = np.linspace(-1.0, 1.0, n)
    r[np.argmin(np.abs(r))] = 0.0
    return r
