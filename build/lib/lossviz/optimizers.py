"""The optimizers of the trainer as pure functions of their state, so that one compiled step serves every run.

Each optimizer is ``init(shapes) -> slots`` and ``update(grads, params, slots, lr, iteration) -> (params, slots)``
on lists of tensors (one per trained variable, in the trainer's order). They compute exactly what Keras 3's
``Adam``, ``SGD`` and ``RMSprop`` compute with their default arguments, with the same operations in the same
order (Kingma & Ba 2015; Tieleman & Hinton 2012), so a run gives the records Keras' optimizer would give;
Keras' own optimizers cannot be called statelessly on the TensorFlow backend (their ``assign`` writes to
their ``tf.Variable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Adam's defaults in Keras
RHO = 0.9  # RMSprop's default in Keras


@dataclass(frozen=True)
class Optimizer:
    name: str
    slots_per_variable: int  # state tensors per trained variable (Adam: m and v)
    update: Callable  # (grads, params, slots, lr, iteration) -> (new params, new slots)

    def init(self, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """Zero slots for variables of these shapes: all first slots, then all second slots (Keras' order)."""
        return [np.zeros(shape, np.float32) for _ in range(self.slots_per_variable) for shape in shapes]


def _adam(grads, params, slots, lr, iteration):
    n = len(params)
    momentums, velocities = list(slots[:n]), list(slots[n:])
    local_step = tf.cast(iteration + 1, tf.float32)
    beta_1_power = tf.pow(tf.constant(BETA_1, tf.float32), local_step)
    beta_2_power = tf.pow(tf.constant(BETA_2, tf.float32), local_step)
    alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    new_params = []
    for i, (g, p) in enumerate(zip(grads, params)):
        m = momentums[i] + (g - momentums[i]) * (1 - BETA_1)
        v = velocities[i] + (tf.square(g) - velocities[i]) * (1 - BETA_2)
        momentums[i], velocities[i] = m, v
        new_params.append(p - (m * alpha) / (tf.sqrt(v) + EPSILON))
    return new_params, momentums + velocities


def _sgd(grads, params, slots, lr, iteration):
    return [p - g * lr for g, p in zip(grads, params)], []


def _rmsprop(grads, params, slots, lr, iteration):
    velocities = []
    new_params = []
    for g, p, velocity in zip(grads, params, slots):
        velocity = RHO * velocity + (1 - RHO) * tf.square(g)
        velocities.append(velocity)
        new_params.append(p - (lr * g) / tf.sqrt(velocity + EPSILON))
    return new_params, velocities


OPTIMIZERS = {"adam": Optimizer("adam", 2, _adam), "sgd": Optimizer("sgd", 0, _sgd),
              "rmsprop": Optimizer("rmsprop", 1, _rmsprop)}
