"""A file that talks: it prints and logs when imported and when its loss is traced. None of it may reach the
JSON of ``check --json``."""

import logging

from keras import ops

print("loading my loss...")
logging.basicConfig(level=logging.INFO)
logging.getLogger("my_loss").info("configured")


def loss(y_true, y_pred, weight=2.0):
    print("tracing the loss")
    p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
    return -ops.mean(weight * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)
