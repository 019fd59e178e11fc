"""SimCLR's NT-Xent loss (Chen et al. 2020) on two views: the model returns a list [z_a, z_b] and the loss
indexes ``y_pred[0]`` and ``y_pred[1]``; the targets are unused placeholders."""

import numpy as np
import keras
from keras import layers, ops


def model():
    a, b = keras.Input((8,), name="view_a"), keras.Input((8,), name="view_b")
    project = layers.Dense(12, name="projection")
    norm = layers.UnitNormalization()
    return keras.Model([a, b], [norm(project(a)), norm(project(b))])


def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 8))
    views = [(x + 0.2 * rng.normal(size=x.shape)).astype("float32") for _ in range(2)]
    return views, [np.zeros((512, 12), "float32"), np.zeros((512, 12), "float32")]


def loss(y_true, y_pred, temperature=0.5):
    za, zb = y_pred[0], y_pred[1]
    logits = ops.matmul(za, ops.transpose(zb)) / temperature
    labels = ops.arange(ops.shape(za)[0])
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
