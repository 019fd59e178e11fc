"""A Loss subclass that derives its class weights in the constructor: setting ``neg_weight`` on the object
changes nothing, so its knobs must rebuild it."""

import keras
from keras import ops


class ClassWeightedBCE(keras.losses.Loss):
    def __init__(self, neg_weight=1.0, pos_weight=20.0, name="class_weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.neg_weight = neg_weight
        self.pos_weight = pos_weight
        self.weights = ops.stack([ops.convert_to_tensor(neg_weight, "float32"),
                                  ops.convert_to_tensor(pos_weight, "float32")])

    def call(self, y_true, y_pred):
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        w = ops.where(y_true > 0.5, self.weights[1], self.weights[0])
        return -ops.mean(w * (y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p)), axis=-1)


loss = ClassWeightedBCE(pos_weight=30.0)
