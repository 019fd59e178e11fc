"""A two-output model compiled the Keras way: one loss per output in a dict (a Loss instance and a name), each
output's loss a term."""

import numpy as np
import keras
from keras import layers

loss = {"value": keras.losses.Huber(delta=0.5), "label": "categorical_crossentropy"}


def model():
    x = keras.Input((8,), name="x")
    h = layers.Dense(24, activation="relu", name="trunk")(x)
    value = layers.Dense(1, name="value")(h)
    label = layers.Dense(3, activation="softmax", name="label")(h)
    return keras.Model(x, {"value": value, "label": label})


def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 8)).astype("float32")
    value = x[:, :2].sum(axis=1, keepdims=True)
    label = np.eye(3, dtype="float32")[np.argmax(x[:, 2:5], axis=1)]
    return x, {"value": value.astype("float32"), "label": label}
