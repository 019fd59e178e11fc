"""A maximised MSE written as ``1 / (mse + eps)`` with a small eps: finite everywhere, but its gradient near a
perfect prediction is enormous."""

from keras import ops


def loss(y_true, y_pred, eps=1e-6):
    return 1.0 / (ops.mean(ops.square(y_pred - y_true), axis=-1) + eps)
