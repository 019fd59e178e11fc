"""A Python ``if`` on a knob that AutoGraph turns into a graph condition: the knob stays live."""

from keras import ops


def loss(y_true, y_pred, label_smoothing=0.05):
    if label_smoothing > 0:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
    return -ops.mean(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)
