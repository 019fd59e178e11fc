"""The Keras Recorder's overhead: the same ``model.fit`` (3x100 dense net, batch 32, 4,096 samples; then a 3x512
net, batch 256) with and without ``lossviz.keras.Recorder`` (every batch recorded and flushed, and every 10th), and
with a callback that does nothing per batch. The best of seven fits each, interleaved. Then the measuring ops alone,
on Keras' compiled step called directly.

    python benchmarks/recorder.py

Aim (issue 19): under 15% slower with ``every=1``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import lossviz.keras  # noqa: E402
import keras  # noqa: E402

EPOCHS = 10
ROUNDS = 7


def model(width: int = 100):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((15,))] + [keras.layers.Dense(width, activation="relu") for _ in range(3)]
                           + [keras.layers.Dense(1, activation="sigmoid")])
    net.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return net


def fit_seconds(callbacks, x, y, width: int, batch: int) -> float:
    """One fit of EPOCHS epochs after a one-batch fit with the same callbacks (compile, trace)."""
    net = model(width)
    net.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
    start = time.perf_counter()
    net.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start


class PerBatch(keras.callbacks.Callback):
    """A callback that does nothing per batch: what Keras' per-batch dispatch alone costs (the fit no longer
    runs its steps ahead of the Python loop)."""

    def on_train_batch_end(self, batch, logs=None):
        pass


def compare(width: int, batch: int, x, y, folder: str) -> None:
    steps = EPOCHS * len(x) // batch
    kinds = {"model.fit alone": lambda: [], "a no-op per-batch callback": lambda: [PerBatch()],
             "Recorder every=1": lambda: [lossviz.keras.Recorder(os.path.join(folder, "r.csv"))],
             "Recorder every=10": lambda: [lossviz.keras.Recorder(os.path.join(folder, "r10.csv"), every=10)]}
    best = {k: float("inf") for k in kinds}
    for _ in range(ROUNDS):  # interleaved: a slow moment of the machine falls on every kind alike
        for name, callbacks in kinds.items():
            best[name] = min(best[name], fit_seconds(callbacks(), x, y, width, batch))
    plain, noop = best["model.fit alone"], best["a no-op per-batch callback"]
    print(f"3x{width} dense net, batch {batch}:")
    print(f"{'':<28} {'':>14}  {'vs model.fit':>12}  {'vs the no-op callback':>21}")
    for name, seconds in best.items():
        print(f"{name:<28} {steps / seconds:6.0f} steps/s  {seconds / plain - 1:+12.1%}  {seconds / noop - 1:+21.1%}")


def step_overhead(width: int, batch: int, x, y, folder: str, rounds: int = 15) -> None:
    """The measuring ops alone: Keras' compiled train function called directly (no fit loop, no callbacks), as
    compiled by ``model.fit`` and as the Recorder rebuilds it. Best of ``rounds``, interleaved; far less noisy
    than whole fits on a 1 ms step."""
    import tensorflow as tf

    def function(record: bool):
        net = model(width)
        net.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)
        if record:
            recorder = lossviz.keras.Recorder(os.path.join(folder, "step.csv"))
            recorder.set_model(net)
            recorder._install()
        batches = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat())
        for _ in range(20):
            net.train_function(batches)
        return net.train_function, batches

    functions = {False: function(False), True: function(True)}
    best = {False: float("inf"), True: float("inf")}
    n = max(20, 300_000 // (width * batch))
    for _ in range(rounds):
        for record, (train, batches) in functions.items():
            start = time.perf_counter()
            for _ in range(n):
                train(batches)
            best[record] = min(best[record], (time.perf_counter() - start) / n)
    print(f"3x{width}, batch {batch}, the step alone: {best[False] * 1e3:.3f} ms; with the Recorder's numbers "
          f"{best[True] * 1e3:.3f} ms ({best[True] / best[False] - 1:+.1%})")


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 15)).astype("float32")
    y = (rng.random((4096, 1)) < 0.1).astype("float32")
    with tempfile.TemporaryDirectory() as folder:
        compare(100, 32, x, y, folder)  # the net: a step of about 1.5 ms, mostly per-op dispatch
        compare(512, 256, x, y, folder)  # a step with work in it
        step_overhead(100, 32, x, y, folder)
        step_overhead(512, 256, x, y, folder)
    print("aim: Recorder every=1 under +15% (time per fit, the 3x100 net)")


if __name__ == "__main__":
    main()
