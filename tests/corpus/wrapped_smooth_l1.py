"""Smooth L1 (Girshick 2015) behind a ``functools.wraps`` decorator that casts the inputs, as detection code
often does; regression on lossviz's own net."""

import functools

from keras import ops


def float_inputs(fn):
    @functools.wraps(fn)
    def wrapper(y_true, y_pred, **kwargs):
        return fn(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"), **kwargs)
    return wrapper


@float_inputs
def loss(y_true, y_pred, beta=1.0):
    diff = ops.abs(y_pred - y_true)
    return ops.mean(ops.where(diff < beta, 0.5 * diff ** 2 / beta, diff - 0.5 * beta), axis=-1)
