"""A soft dice loss on a small segmentation-like model: 8x8 images, a mask of the bright blob in each.

    python -m lossviz train examples/dice.py --steps 200 --out dice.csv

The loss returns two terms, so the page draws their gradient anatomy: dice (overlap) and bce (per pixel).
"""

import numpy as np
import keras
from keras import layers, ops

SIZE = 8


def model():
    x_in = keras.Input(shape=(SIZE, SIZE, 1), name="image")
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_1")(x_in)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_2")(h)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(h)
    return keras.Model(x_in, out)


def data(seed):
    rng = np.random.default_rng(seed)
    n = 512
    rows, cols = np.mgrid[:SIZE, :SIZE]
    centre = rng.uniform(1.5, SIZE - 2.5, size=(n, 2))
    radius = rng.uniform(1.0, 2.5, size=n)
    inside = (rows[None] - centre[:, 0, None, None]) ** 2 + (cols[None] - centre[:, 1, None, None]) ** 2 \
        <= radius[:, None, None] ** 2
    image = inside + rng.normal(0.0, 0.4, size=inside.shape)
    return image[..., None].astype("float32"), inside[..., None].astype("float32")


def loss(y_true, y_pred, smooth=1.0, bce_weight=0.5):
    overlap = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    dice = 1.0 - (2.0 * overlap + smooth) / (total + smooth)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    return {"dice": dice, "bce": bce_weight * bce}


def iou(y_true, y_pred):
    hit = ops.cast(y_pred > 0.5, "float32")
    both = ops.sum(hit * y_true, axis=(1, 2, 3))
    either = ops.sum(ops.maximum(hit, y_true), axis=(1, 2, 3))
    return both / ops.maximum(either, 1.0)


metrics = {"iou": iou}
