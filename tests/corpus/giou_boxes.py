"""Box regression (n, 4) with a generalised IoU loss (Rezatofighi et al. 2019): a string mode passed through,
and an epsilon knob."""

import numpy as np
import keras
from keras import layers, ops


def model():
    x = keras.Input((6,), name="features")
    h = layers.Dense(32, activation="relu", name="hidden")(x)
    centre = layers.Dense(2, activation="sigmoid", name="centre")(h)
    size = layers.Dense(2, activation="softplus", name="size")(h)
    return keras.Model(x, layers.Concatenate(name="box")([centre, size]))


def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((512, 6)).astype("float32")
    box = np.stack([x[:, 0], x[:, 1], 0.1 + 0.3 * x[:, 2], 0.1 + 0.3 * x[:, 3]], axis=1)
    return x, box.astype("float32")


def _corners(b):
    half = b[..., 2:] / 2.0
    return b[..., :2] - half, b[..., :2] + half


def loss(y_true, y_pred, mode="giou", eps=1e-7):
    (t0, t1), (p0, p1) = _corners(y_true), _corners(y_pred)
    inter = ops.prod(ops.relu(ops.minimum(t1, p1) - ops.maximum(t0, p0)), axis=-1)
    union = ops.prod(t1 - t0, axis=-1) + ops.prod(p1 - p0, axis=-1) - inter
    iou = inter / (union + eps)
    if mode == "iou":
        return 1.0 - iou
    hull = ops.prod(ops.maximum(t1, p1) - ops.minimum(t0, p0), axis=-1)
    return 1.0 - iou + (hull - union) / (hull + eps)
