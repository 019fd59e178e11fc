"""A Loss subclass whose constructor requires an argument its config omits (a common slip): Keras compiles the
instance, so lossviz must too."""

import keras
from keras import ops


class PositiveWeightedBCE(keras.losses.Loss):
    def __init__(self, pos_weight, epsilon=1e-6, name="positive_weighted_bce"):
        super().__init__(name=name)
        self.pos_weight = pos_weight
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        return -ops.mean(self.pos_weight * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)


loss = PositiveWeightedBCE(8.0)
