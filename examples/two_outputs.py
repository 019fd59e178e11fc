"""Seed 001's case: one input, two outputs of different shapes, and a loss that needs both, mixed by alpha.

    python -m lossviz train examples/two_outputs.py --set alpha=0.8 --steps 300 --out two.csv

The loss returns a dict of terms (each weighted): the page draws each term's gradient on every layer.
"""

import numpy as np
import keras
from keras import layers, ops


def model():
    x_in = keras.Input(shape=(10,), name="x")
    h = layers.Dense(32, activation="relu", name="trunk")(x_in)
    r = layers.Dense(1, name="regression")(layers.Dense(16, activation="relu", name="regression_hidden")(h))
    c = layers.Dense(3, activation="softmax", name="classification")(
        layers.Dense(16, activation="relu", name="classification_hidden")(h))
    return keras.Model(x_in, {"regression": r, "classification": c})


def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1024, 10)).astype("float32")
    value = x[:, :3].sum(axis=1, keepdims=True) + 0.1 * rng.normal(size=(1024, 1))
    label = np.argmax(x[:, 3:6] + 0.3 * rng.normal(size=(1024, 3)), axis=1)
    y = {"regression": value.astype("float32"), "classification": np.eye(3, dtype="float32")[label]}
    return (x[:896], {k: v[:896] for k, v in y.items()}), (x[896:], {k: v[896:] for k, v in y.items()})


def loss(y_true, y_pred, alpha=0.5):
    l1 = ops.mean(ops.square(y_true["regression"] - y_pred["regression"]), axis=-1)
    l2 = keras.losses.categorical_crossentropy(y_true["classification"], y_pred["classification"])
    return {"regression": alpha * l1, "classification": (1.0 - alpha) * l2}


def accuracy(y_true, y_pred):
    hit = ops.argmax(y_pred["classification"], axis=-1) == ops.argmax(y_true["classification"], axis=-1)
    return ops.cast(hit, "float32")


metrics = {"accuracy": accuracy}
