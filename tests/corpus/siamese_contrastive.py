"""A siamese pair model whose output is a distance of shape (n,), and the contrastive loss of Hadsell, Chopra,
LeCun (2006) with its margin."""

import numpy as np
import keras
from keras import layers, ops


class Distance(layers.Layer):
    def call(self, a, b):
        return ops.sqrt(ops.sum(ops.square(a - b), axis=-1) + 1e-9)


def model():
    left, right = keras.Input((5,), name="left"), keras.Input((5,), name="right")
    embed = layers.Dense(8, name="embed")
    return keras.Model([left, right], Distance(name="distance")(embed(left), embed(right)))


def data(seed):
    rng = np.random.default_rng(seed)
    n = 512
    a = rng.normal(size=(n, 5))
    same = rng.random(n) < 0.5
    b = np.where(same[:, None], a + 0.1 * rng.normal(size=(n, 5)), rng.normal(size=(n, 5)))
    return [a.astype("float32"), b.astype("float32")], same.astype("float32")


def loss(y_true, y_pred, margin=1.0):
    return y_true * ops.square(y_pred) + (1.0 - y_true) * ops.square(ops.relu(margin - y_pred))
