"""A per-pixel softmax head (n, 8, 8, 3) with one-hot masks: a soft dice plus a weighted cross-entropy per image."""

import numpy as np
import keras
from keras import layers, ops

SIZE, CLASSES = 8, 3


def model():
    image = keras.Input((SIZE, SIZE, 1), name="image")
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    return keras.Model(image, layers.Conv2D(CLASSES, 1, activation="softmax", name="mask")(h))


def data(seed):
    rng = np.random.default_rng(seed)
    n = 256
    rows, cols = np.mgrid[:SIZE, :SIZE]
    cx, cy = rng.uniform(2, SIZE - 2, (2, n))
    disk = (rows[None] - cx[:, None, None]) ** 2 + (cols[None] - cy[:, None, None]) ** 2 <= 4.0
    stripe = (rows[None] + 0 * cx[:, None, None]) >= SIZE - 2
    label = np.where(disk, 1, np.where(stripe, 2, 0))
    image = label / 2.0 + rng.normal(0, 0.3, label.shape)
    return image[..., None].astype("float32"), np.eye(CLASSES, dtype="float32")[label]


def loss(y_true, y_pred, smooth=1.0, ce_weight=0.5):
    axes = (1, 2)
    overlap = ops.sum(y_true * y_pred, axis=axes)
    sizes = ops.sum(y_true + y_pred, axis=axes)
    dice = 1.0 - ops.mean((2.0 * overlap + smooth) / (sizes + smooth), axis=-1)
    ce = -ops.mean(ops.sum(y_true * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1), axis=axes)
    return dice + ce_weight * ce
