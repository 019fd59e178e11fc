"""The sparse-penalty logits loss as a file of your own code, on lossviz's own net and data (for
``benchmarks/your_code.py``): the same graph as ``sparse-penalty --set variant=logits``."""

from keras import ops

from lossviz import data as lossviz_data, models


def model():
    return models.sparse_penalty()


def data(seed):
    found = lossviz_data.sparse_events(seed)
    return found.inputs, found.targets


def loss(y_true, y_pred, penalty=10.0):
    y, z = y_true["y"], y_pred["logit"]
    return -ops.mean(penalty * y * ops.log_sigmoid(z) + (1.0 - y) * ops.log_sigmoid(-z), axis=-1)
