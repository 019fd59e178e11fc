"""A policy/value net returning a list [policy, value], and an AlphaZero-style loss that indexes both heads."""

import numpy as np
import keras
from keras import layers, ops

MOVES = 9


def model():
    board = keras.Input((MOVES * 2,), name="board")
    h = layers.Dense(32, activation="relu", name="trunk")(board)
    policy = layers.Dense(MOVES, activation="softmax", name="policy")(h)
    value = layers.Dense(1, activation="tanh", name="value")(h)
    return keras.Model(board, [policy, value])


def data(seed):
    rng = np.random.default_rng(seed)
    n = 512
    board = (rng.random((n, MOVES * 2)) < 0.3).astype("float32")
    score = board[:, :MOVES] - board[:, MOVES:] + 0.5 * rng.normal(size=(n, MOVES))
    pi = np.exp(2 * score) / np.exp(2 * score).sum(axis=1, keepdims=True)
    z = np.tanh(board[:, :MOVES].sum(axis=1) - board[:, MOVES:].sum(axis=1))[:, None]
    return board, [pi.astype("float32"), z.astype("float32")]


def loss(y_true, y_pred, value_weight=1.0):
    policy = -ops.sum(y_true[0] * ops.log(ops.clip(y_pred[0], 1e-8, 1.0)), axis=-1)
    value = ops.square(y_true[1][:, 0] - y_pred[1][:, 0])
    return policy + value_weight * value
