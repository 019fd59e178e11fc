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

A callback sees no gradients: there are no ``grad_norm`` or per-term columns. The numbers are measured inside the
model's own compiled train step (the Recorder wraps ``train_step`` and rebuilds Keras' train function once; the
model keeps that step, a few fused reductions, for its later fits) and come back with its logs, taken out before any
other callback sees them: a batch costs a CSV row, not a call of its own. A later fit with the same Recorder appends
to its file, the steps counting on. ``stop_on_nonfinite=True`` stops the fit after recording where it happened, as
``TerminateOnNaN`` does but with the evidence.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import tensorflow as tf
import keras

from .records import CsvWriter


_ROW = "lossviz_recorder_row"  # the key of the numbers in the compiled step's logs


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
        self._writer: CsvWriter | None = None
        self._log_names: dict[str, str] | None = None

    # -- the numbers of a row, computed inside Keras' own train step ---------------------------------

    def _numbers(self, before, after, optimizer):
        """Every number of a row in one vector, from two fused sums of squares a weight (``l2_loss``: half the sum
        of squares, one op): the layers' weight norms, their update norms (after - before), the global update
        norm, the learning rate, then each weight's half sum of squares (non-finite when the weight holds a NaN/inf:
        the host then counts them in that weight)."""
        values = [tf.cast(v, tf.float32) for v in after]
        squares = tf.stack([tf.nn.l2_loss(v) for v in values])
        moved = tf.stack([tf.nn.l2_loss(v - tf.cast(b, tf.float32)) for v, b in zip(values, before)])
        layers = len(self._layers)
        weight_norms = tf.sqrt(2.0 * tf.math.unsorted_segment_sum(squares, self._layer_ids, layers))
        update_norms = tf.sqrt(2.0 * tf.math.unsorted_segment_sum(moved, self._layer_ids, layers))
        lr = tf.reshape(tf.cast(optimizer.learning_rate, tf.float32), (1,)) if optimizer is not None else [np.nan]
        return tf.concat([weight_norms, update_norms, [tf.sqrt(2.0 * tf.reduce_sum(moved))], lr, squares], 0)

    def _nonfinite_weights(self, squares) -> list[tuple[int, int]]:
        """(index, count of NaN/inf entries) of the weights that hold any, in order: read from the weights, and only
        for those whose sum of squares is not finite (an overflow of huge finite values counts nothing)."""
        counts = [(i, int(np.count_nonzero(~np.isfinite(np.asarray(self._weights[i])))))
                  for i, square in enumerate(squares) if not math.isfinite(square)]
        return [(i, count) for i, count in counts if count]

    def _install(self) -> None:
        """Wrap the model's ``train_step`` so that each step also measures the row's numbers (in the same compiled
        function) and returns them with its logs, and wrap Keras' rebuilt train function to take them out of the
        logs before any callback sees them: a batch then costs no call and no read of its own."""
        model = self.model
        original = model.__dict__.get("_lossviz_train_step") or model.train_step  # never wrap a wrapper
        model._lossviz_train_step = original
        weights = self._weights = list(model.weights)
        self._paths = [w.path for w in weights]
        self._layers = list(dict.fromkeys(_layer_of(p) for p in self._paths))
        self._layer_ids = tf.constant([self._layers.index(_layer_of(p)) for p in self._paths], tf.int32)
        self._weight_columns = [f"weight_norm:{layer}" for layer in self._layers]
        self._update_columns = [f"update_norm:{layer}" for layer in self._layers]

        def train_step(*args, **kwargs):
            before = [tf.identity(w.value) for w in weights]  # read before the update (ordered by TensorFlow)
            logs = dict(original(*args, **kwargs))
            logs[_ROW] = self._numbers(before, [w.value for w in weights], model.optimizer)
            return logs

        train_step.__wrapped__ = original
        model.train_step = train_step
        model.make_train_function(force=True)
        compiled = model.train_function

        def train_function(iterator):
            logs = dict(compiled(iterator))
            # kept for on_train_batch_end, which Keras calls synchronously after this batch (any callback
            # defining the hook makes it so), before the next call here
            self._last = logs.pop(_ROW)
            return logs

        train_function.recorder = self  # the next fit with this Recorder reuses the compiled step
        model.train_function = train_function

    # -- Keras' hooks ----------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        if getattr(self.model.train_function, "recorder", None) is not self:
            self._install()
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        # a later fit with the same Recorder goes on in the same file, its steps counting on
        self._file = open(self.path, "a" if self.rows else "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = CsvWriter(self._file, self._writer.header if self._writer else None, append=bool(self.rows))

    def _recorded(self, step: int) -> bool:
        return step % self.every == 0 or self.every == 1

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if not self._recorded(self.step):
            return
        logs = logs or {}
        if self._log_names is None:  # Keras' log keys -> columns, fixed by the first row
            self._log_names = {key: f"loss:{key[:-len('_loss')]}" if key.endswith("_loss") else f"metric:{key}"
                               for key in logs if key != "loss"}
        numbers = self._last.numpy().tolist()
        n = len(self._layers)
        loss = float(logs.get("loss", math.nan))
        row: dict[str, Any] = {"step": self.step, "loss": loss}
        for key, name in self._log_names.items():
            row[name] = float(logs.get(key, math.nan))
        row["lr"] = numbers[2 * n + 1]
        row.update(zip(self._weight_columns, numbers[:n]))
        row.update(zip(self._update_columns, numbers[n:2 * n]))
        row["update_norm"] = numbers[2 * n]
        loss_bad = 0 if math.isfinite(loss) else 1
        bad = self._nonfinite_weights(numbers[2 * n + 2:])
        count = loss_bad + sum(c for _, c in bad)
        where, kind = ("loss", "loss") if loss_bad else ("", "")
        if bad and not loss_bad:
            where, kind = self._paths[bad[0][0]], "weight"
        row.update(nonfinite=count, first_nonfinite=where, nonfinite_in=kind)
        self._writer.write(row)
        self._writer.flush()  # a Runs page watching the folder sees the row now
        self.rows += 1
        if count and self.first_nonfinite is None:
            self.first_nonfinite = {"step": self.step, "first_nonfinite": where, "nonfinite_in": kind}
            if self.stop_on_nonfinite:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
