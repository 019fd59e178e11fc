"""A Taylor-expanded cross-entropy (as in "PolyLoss", Leng et al. 2022): the ``order`` of the expansion is used in
``range``, so it is an int that shapes the graph."""

from keras import ops


def loss(y_true, y_pred, order=3, epsilon=1e-6):
    pt = ops.where(y_true > 0.5, y_pred, 1.0 - y_pred)
    total = 0.0
    for k in range(1, order + 1):
        total = total + (1.0 - pt) ** k / k
    return ops.mean(total + epsilon, axis=-1)
