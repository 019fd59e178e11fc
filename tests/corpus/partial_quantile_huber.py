"""A quantile Huber loss (as in distributional RL) with its settings bound by ``functools.partial``."""

import functools

from keras import ops


def quantile_huber(y_true, y_pred, tau=0.5, kappa=1.0):
    u = y_true - y_pred
    huber = ops.where(ops.abs(u) <= kappa, 0.5 * u ** 2, kappa * (ops.abs(u) - 0.5 * kappa))
    below = ops.cast(u < 0.0, "float32")
    return ops.mean(ops.abs(tau - below) * huber / kappa, axis=-1)


loss = functools.partial(quantile_huber, tau=0.8, kappa=0.5)
