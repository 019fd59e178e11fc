"""Steps per second of the lossviz trainer (every probe on) versus ``model.fit``, same model, data, batch.

    python benchmarks/train_step.py [--steps 2000] [--batch-size 32]

Prints one line per demo and the ratio trainer / fit from this one run (aim: >= 0.8x, CPU only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import losses, models  # noqa: E402  (first: it sets TensorFlow's environment)
import keras  # noqa: E402
from lossviz.training import Trainer  # noqa: E402


def fit_rate(model: keras.Model, loss, inputs, targets, steps: int, batch: int) -> float:
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    n = len(next(iter(inputs.values())))
    per_epoch = n // batch
    model.fit(inputs, targets, batch_size=batch, epochs=1, steps_per_epoch=min(per_epoch, 50), verbose=0)
    epochs = max(steps // per_epoch, 1)
    start = time.perf_counter()
    model.fit(inputs, targets, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
    return epochs * per_epoch / (time.perf_counter() - start)


def trainer_rate(demo: str, settings: dict, steps: int) -> float:
    with Trainer(demo, settings, seed=0) as trainer:
        list(trainer.run(50))  # trace and warm up
        start = time.perf_counter()
        for _ in trainer.run(steps):
            pass
        return steps / (time.perf_counter() - start)


def sparse_penalty(steps: int, batch: int) -> tuple[float, float]:
    trainer = trainer_rate("sparse-penalty", {"variant": "clipped", "batch_size": batch}, steps)
    with Trainer("sparse-penalty", {"variant": "clipped"}, seed=0) as t:
        x, y = t.data.inputs, t.data.targets["y"]
    net = models.sparse_penalty()
    models.initialize(net, 0)
    single = keras.Model(net.inputs, net.get_layer("probability").output)  # the same layers, one output
    fit = fit_rate(single, losses.SparsePenaltyBCE(10.0, 1e-7), x, y, steps, batch)
    return trainer, fit


def policy_value(steps: int, batch: int) -> tuple[float, float]:
    trainer = trainer_rate("policy-value", {"batch_size": batch}, steps)
    with Trainer("policy-value", {}, seed=0) as t:
        data = t.data
    net = models.policy_value(masked=True)
    models.initialize(net, 0)
    fit = fit_rate(net, {"policy": losses.MaskedPolicyCrossEntropy(), "value": "mse"}, data.inputs,
                   {"policy": data.targets["pi"], "value": data.targets["z"]}, steps, batch)
    return trainer, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, batch {args.batch_size}, {args.steps} timed steps each")
    for name, bench in (("sparse-penalty (3x100 dense)", sparse_penalty), ("policy-value (conv, two heads)", policy_value)):
        trainer, fit = bench(args.steps, args.batch_size)
        print(f"{name:32s} trainer {trainer:7.0f} steps/s   model.fit {fit:7.0f} steps/s   ratio {trainer / fit:.2f}x")


if __name__ == "__main__":
    main()
