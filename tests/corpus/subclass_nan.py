"""A Loss subclass with an unguarded log in its ``call``: where its NaN is born must name this file's line."""

import keras
from keras import ops


class ShiftedLogLoss(keras.losses.Loss):
    def __init__(self, shift=0.5, name="shifted_log"):
        super().__init__(name=name)
        self.shift = shift

    def call(self, y_true, y_pred):
        return -ops.mean(y_true * ops.log(y_pred - self.shift), axis=-1)


loss = ShiftedLogLoss()
