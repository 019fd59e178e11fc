"""Keras' own binary focal loss as an instance, with class balancing on: its config round-trip breaks, the
instance itself must not."""

import keras

loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=3.0)
