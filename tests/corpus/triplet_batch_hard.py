"""Batch-hard triplet loss (Hermans, Beyer, Leibe 2017) on L2-normalised embeddings (n, 16): a batch-level loss
of integer labels that returns one number."""

import numpy as np
import keras
from keras import layers, ops


def model():
    x = keras.Input((10,), name="x")
    h = layers.Dense(32, activation="relu", name="hidden")(x)
    z = layers.Dense(16, name="embedding")(h)
    return keras.Model(x, layers.UnitNormalization(name="unit")(z))


def data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 10))
    label = rng.integers(0, 6, 768)
    return (centres[label] + 0.5 * rng.normal(size=(768, 10))).astype("float32"), label.astype("float32")


def loss(y_true, y_pred, margin=0.3):
    labels = ops.reshape(y_true, (-1,))
    dist = ops.sqrt(ops.maximum(2.0 - 2.0 * ops.matmul(y_pred, ops.transpose(y_pred)), 1e-12))
    same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32")
    hardest_positive = ops.max(dist * same, axis=1)
    hardest_negative = ops.min(dist + 4.0 * same, axis=1)
    return ops.mean(ops.relu(hardest_positive - hardest_negative + margin))
