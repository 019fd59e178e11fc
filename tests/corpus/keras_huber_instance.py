"""Keras' Huber loss as a configured instance (regression)."""

import keras

loss = keras.losses.Huber(delta=0.5)
