"""Keras' own loss function named directly, as ``compile(loss=keras.losses.binary_crossentropy)`` takes it: its
keyword defaults are knobs (``axis`` an int that shapes the graph)."""

import keras

loss = keras.losses.binary_crossentropy
