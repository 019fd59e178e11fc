"""The pinball (quantile) loss as a TensorFlow-Addons-style decorated function: its knob sits behind
``tf.function``."""

import tensorflow as tf


@tf.function
def loss(y_true, y_pred, tau=0.5):
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    error = y_true - y_pred
    return tf.reduce_mean(tf.maximum(tau * error, (tau - 1.0) * error), axis=-1)
