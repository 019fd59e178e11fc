"""A ``keras.losses.Loss`` subclass: the sparse-penalty question's weighted BCE, guarded by epsilon.

    python -m lossviz train examples/weighted_bce.py --set penalty=20 --steps 300 --out wbce.csv

Its numeric constructor arguments (penalty, epsilon) are the knobs.
"""

import keras
from keras import ops


class WeightedBCE(keras.losses.Loss):
    def __init__(self, penalty=10.0, epsilon=1e-7, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.penalty = penalty
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        return -ops.mean(self.penalty * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p), axis=-1)

    def get_config(self):
        return {**super().get_config(), "penalty": self.penalty, "epsilon": self.epsilon}


loss = WeightedBCE
