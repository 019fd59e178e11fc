"""A sigmoid focal loss in the TensorFlow Addons manner: decorated, checked with Python ``if`` on its knobs (so
both are graph-shaping), and a from_logits flag passed through."""

import tensorflow as tf


@tf.function
def loss(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False):
    if gamma and gamma < 0:
        raise ValueError("gamma must be >= 0")
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    ce = tf.keras.backend.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    prob = tf.sigmoid(y_pred) if from_logits else y_pred
    p_t = y_true * prob + (1.0 - y_true) * (1.0 - prob)
    weight = 1.0
    if alpha:
        weight = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    focus = 1.0
    if gamma:
        focus = tf.pow(1.0 - p_t, gamma)
    return tf.reduce_sum(weight * focus * ce, axis=-1)
