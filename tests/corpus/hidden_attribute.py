"""A Loss subclass that keeps its constructor argument under another name: lossviz cannot read it back, so the
instance is used as given, without that knob, and says so."""

import keras
from keras import ops


class MarginRanking(keras.losses.Loss):
    def __init__(self, margin=0.5, name="margin_ranking"):
        super().__init__(name=name)
        self.m = margin

    def call(self, y_true, y_pred):
        sign = 2.0 * y_true - 1.0
        return ops.mean(ops.relu(self.m - sign * (y_pred - 0.5)), axis=-1)


loss = MarginRanking(margin=0.25)
