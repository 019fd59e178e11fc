"""Token tagging: a sequence head (n, T, C) over embedded token ids, sparse tags, and a cross-entropy that leaves
the padding out."""

import numpy as np
import keras
from keras import layers, ops

T, VOCAB, TAGS = 12, 20, 4


def model():
    tokens = keras.Input((T,), name="tokens")
    h = layers.Embedding(VOCAB, 8, name="embed")(tokens)
    h = layers.Conv1D(16, 3, padding="same", activation="relu", name="context")(h)
    return keras.Model(tokens, layers.Dense(TAGS, activation="softmax", name="tags")(h))


def data(seed):
    rng = np.random.default_rng(seed)
    n = 384
    tokens = rng.integers(1, VOCAB, (n, T))
    lengths = rng.integers(4, T + 1, n)
    pad = np.arange(T)[None] >= lengths[:, None]
    tokens[pad] = 0
    tags = np.where(pad, 0, 1 + tokens % (TAGS - 1))
    return tokens.astype("float32"), tags.astype("float32")


def loss(y_true, y_pred, pad_weight=0.0):
    tags = ops.cast(y_true, "int32")
    picked = ops.take_along_axis(y_pred, tags[..., None], axis=-1)[..., 0]
    weight = ops.where(tags == 0, pad_weight, 1.0)
    return -ops.sum(weight * ops.log(ops.clip(picked, 1e-7, 1.0)), axis=-1) / ops.maximum(ops.sum(weight, -1), 1.0)
