"""A Keras 2 tutorial's weighted BCE through ``tensorflow.keras.backend``, whose functions still exist under
Keras 3's tf.keras: it must train, not be refused."""

from tensorflow.keras import backend as K


def loss(y_true, y_pred, pos_weight=10.0):
    p = K.clip(y_pred, K.epsilon(), 1.0 - K.epsilon())
    return -K.mean(pos_weight * y_true * K.log(p) + (1.0 - y_true) * K.log(1.0 - p), axis=-1)
