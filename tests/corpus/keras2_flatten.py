"""A Keras 2 dice loss on ``keras.backend``: ``K.flatten`` is gone from Keras 3's keras.backend, so the file is
refused in one line that names the Keras 3 equivalent."""

from keras import backend as K


def loss(y_true, y_pred, smooth=1.0):
    t, p = K.flatten(y_true), K.flatten(y_pred)
    return 1.0 - (2.0 * K.sum(t * p) + smooth) / (K.sum(t) + K.sum(p) + smooth)
