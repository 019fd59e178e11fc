"""lossviz: explore custom training losses of Keras models (library part, no UI)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no start-up banner; same numbers on every CPU
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
