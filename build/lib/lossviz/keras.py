"""``lossviz.keras.Recorder``: a Keras callback that records your own ``model.fit`` in lossviz's CSV format.

    model.fit(x, y, callbacks=[lossviz.keras.Recorder("runs/my_run.csv")])

One row per batch (every ``every``-th), flushed as it comes, so a Runs page pointed at the folder shows the fit
live and an interrupted fit keeps every finished batch. Columns:

- ``step``, ``loss``; every other loss Keras logs as ``loss:<output>`` (``<output>_loss``), every metric as
  ``metric:<name>``; ``lr`` (the optimizer's learning rate);
- per layer, ``weight_norm:<layer>`` and ``update_norm:<layer>`` (the norm of the change of the layer's weights
  over the batch), and ``update_norm`` over every weight;
- ``nonfinite`` (non-finite entries in the loss and the weights), ``first_nonfinite`` (``loss`` or the path of the
  first weight that turned non-finite) and ``nonfinite_in`` (``loss`` or ``weight``), as a lossviz run has them.

A callback sees no gradients: there are no ``grad_norm`` or per-term columns. The norms come from one compiled
function per batch (no per-variable numpy). ``stop_on_nonfinite=True`` stops the fit after recording where it
happened, as ``TerminateOnNaN`` does but with the evidence.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np
import tensorflow as tf
import keras

from .records import _cell


def _layer_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else path


class Recorder(keras.callbacks.Callback):
    def __init__(self, path: str | os.PathLike, every: int = 1, stop_on_nonfinite: bool = False):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.path, self.every, self.stop_on_nonfinite = os.fspath(path), int(every), bool(stop_on_nonfinite)
        self.step = 0
        self.rows = 0
        self.first_nonfinite: dict[str, Any] | None = None
        self._file = None
        self._writer = None
        self._fn = None

    # -- the compiled norms --------------------------------------------------------------------------

    def _build(self) -> None:
        weights = list(self.model.weights)
        self._weights = weights
        self._paths = [w.path for w in weights]
        self._layers = list(dict.fromkeys(_layer_of(p) for p in self._paths))
        groups = [[i for i, p in enumerate(self._paths) if _layer_of(p) == layer] for layer in self._layers]
        self._before = [tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False) for w in weights]

        @tf.function
        def snapshot():
            for v, w in zip(self._before, weights):
                v.assign(w.value)

        @tf.function
        def norms():
            """Every number of a row in one vector (one call, one copy to the host per batch): the layers' weight
            norms, their update norms, the global update norm, each weight's non-finite count; then the weights
            are kept as the next batch's "before"."""
            values = [tf.cast(w.value, tf.float32) for w in weights]
            change = [v - tf.cast(b, tf.float32) for v, b in zip(values, self._before)]
            square = tf.stack([tf.reduce_sum(tf.square(v)) for v in values])
            moved = tf.stack([tf.reduce_sum(tf.square(c)) for c in change])
            bad = tf.stack([tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(v)), tf.float32)) for v in values])
            weight_norms = tf.stack([tf.sqrt(tf.reduce_sum(tf.gather(square, g))) for g in groups])
            update_norms = tf.stack([tf.sqrt(tf.reduce_sum(tf.gather(moved, g))) for g in groups])
            out = tf.concat([weight_norms, update_norms, [tf.sqrt(tf.reduce_sum(moved))], bad], 0)
            with tf.control_dependencies([out]):
                for v, w in zip(self._before, weights):
                    v.assign(w.value)
            return out

        self._snapshot, self._norms = snapshot, norms

    # -- Keras' hooks ----------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._build()
        self._snapshot()
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115  (open for the fit)
        self._writer = None

    def _recorded(self, step: int) -> bool:
        return step % self.every == 0 or self.every == 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.every > 1 and self._recorded(self.step + 1):  # every batch: the last row's call kept the weights
            self._snapshot()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if not self._recorded(self.step):
            return
        logs = dict(logs or {})
        numbers = self._norms().numpy().astype(np.float64)
        n = len(self._layers)
        weight_norms, update_norms, update_norm, bad = numbers[:n], numbers[n:2 * n], numbers[2 * n], numbers[2 * n + 1:]
        loss = float(logs.pop("loss", math.nan))
        row: dict[str, Any] = {"step": self.step, "loss": loss}
        for key, value in logs.items():
            name = f"loss:{key[:-len('_loss')]}" if key.endswith("_loss") else f"metric:{key}"
            row[name] = float(value)
        row["lr"] = self._lr()
        row.update({f"weight_norm:{layer}": float(v) for layer, v in zip(self._layers, weight_norms)})
        row.update({f"update_norm:{layer}": float(v) for layer, v in zip(self._layers, update_norms)})
        row["update_norm"] = float(update_norm)
        loss_bad = 0 if math.isfinite(loss) else 1
        count = loss_bad + int(bad.sum())
        where, kind = ("loss", "loss") if loss_bad else (
            (self._paths[int(np.argmax(bad > 0))], "weight") if bad.any() else ("", ""))
        row.update(nonfinite=count, first_nonfinite=where, nonfinite_in=kind)
        self._write(row)
        if count and self.first_nonfinite is None:
            self.first_nonfinite = {"step": self.step, "first_nonfinite": where, "nonfinite_in": kind}
            if self.stop_on_nonfinite:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- helpers -------------------------------------------------------------------------------------

    def _lr(self) -> float:
        lr = getattr(self.model.optimizer, "learning_rate", None)
        try:
            return float(np.asarray(lr.value if hasattr(lr, "value") else lr))
        except (TypeError, ValueError):
            return math.nan

    def _write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row), lineterminator="\n", extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._file.flush()  # a Runs page watching the folder sees the row now
        self.rows += 1
