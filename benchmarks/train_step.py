"""Steps per second of the lossviz trainer (every probe on) versus ``model.fit``, same model, data, batch.

    python benchmarks/train_step.py [--steps 2000] [--batch-size 32] [--sharpness-only]

Prints, per demo, ``model.fit`` and the trainer with the per-term gradient probe (``term_grads``) off, at its
default (every 10th step) and at every step, with each ratio to ``model.fit`` from this one run (aims, issue 20:
the default >= 5x on the dense net, >= 4x on policy-value; CPU only); the time to compile the step with XLA beside
the time to trace the plain step; then the two-branch weighting modes, trainer only; then the cost of the
sharpness probe (``sharpness`` off, every-50, every-10; aims, issue 29: every-50 at most 10% slower than off,
every-10 at most 35%), the three interleaved round by round, with the median and the spread (min-max) of the rounds.
The trainer is timed as a page's run trains: ``Trainer.advance`` (the records go to the run's log; no dict per
record).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import demos, losses, models, step  # noqa: E402  (first: it sets TensorFlow's environment)
import keras  # noqa: E402
from lossviz.training import Trainer  # noqa: E402


def fit_rate(model: keras.Model, loss, inputs, targets, steps: int, batch: int) -> float:
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    n = len(next(iter(inputs.values())))
    per_epoch = n // batch
    model.fit(inputs, targets, batch_size=batch, epochs=1, steps_per_epoch=min(per_epoch, 50), verbose=0)
    epochs = max(steps // per_epoch, 1)
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.fit(inputs, targets, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
        best = max(best, epochs * per_epoch / (time.perf_counter() - start))
    return best


REPEATS = 3  # each figure is the best of this many (a shared 2-core machine: the worst is noise)


def trainer_rate(demo: str, settings: dict, steps: int) -> float:
    with Trainer(demo, settings, seed=0) as trainer:
        trainer.advance(50)  # compile and warm up
        best = 0.0
        for _ in range(REPEATS):
            start = time.perf_counter()
            trainer.advance(steps)
            best = max(best, steps / (time.perf_counter() - start))
        return best


def compile_times(demo: str) -> str:
    """Seconds to build and compile a fresh step of the demo's default structure, with XLA and plain."""
    times = []
    for xla in (True, False):
        with Trainer(demo, {}, seed=0) as trainer:
            fresh = step.Step(demos.get_demo(demo), trainer.settings)  # not the process's cached one
            fresh.xla = xla
            trainer._compiled = fresh
            trainer.state = fresh.initial_state(0)
            times.append(trainer.warm())
    return f"compile: XLA {times[0]:.1f} s, plain trace {times[1]:.1f} s"


PROBES = ("off", "every-10", "every")


def sparse_penalty(steps: int, batch: int) -> tuple[dict[str, float], float]:
    trainer = {p: trainer_rate("sparse-penalty", {"variant": "clipped", "batch_size": batch, "term_grads": p}, steps)
               for p in PROBES}
    with Trainer("sparse-penalty", {"variant": "clipped"}, seed=0) as t:
        x, y = t.data.inputs, t.data.targets["y"]
    net = models.sparse_penalty()
    models.initialize(net, 0)
    single = keras.Model(net.inputs, net.get_layer("probability").output)  # the same layers, one output
    fit = fit_rate(single, losses.SparsePenaltyBCE(10.0, 1e-7), x, y, steps, batch)
    return trainer, fit


def policy_value(steps: int, batch: int) -> tuple[dict[str, float], float]:
    trainer = {p: trainer_rate("policy-value", {"batch_size": batch, "term_grads": p}, steps) for p in PROBES}
    with Trainer("policy-value", {}, seed=0) as t:
        data = t.data
    net = models.policy_value(masked=True)
    models.initialize(net, 0)
    fit = fit_rate(net, {"policy": losses.MaskedPolicyCrossEntropy(), "value": "mse"}, data.inputs,
                   {"policy": data.targets["pi"], "value": data.targets["z"]}, steps, batch)
    return trainer, fit


SHARPNESS = ("off", "every-50", "every-10")
ROUNDS = 5  # the sharpness section's rounds, each timing every setting once, in turn


def sharpness_cost(demo: str, settings: dict, steps: int) -> dict[str, list[float]]:
    """Steps per second of each ``SHARPNESS`` setting, one figure a round. Each trainer is warmed past its first
    two measurements (the first iterates to convergence from a random vector; the later ones start warm)."""
    trainers = {p: Trainer(demo, {**settings, "sharpness": p}, seed=0) for p in SHARPNESS}
    rates: dict[str, list[float]] = {p: [] for p in SHARPNESS}
    try:
        for t in trainers.values():
            t.advance(60)
        for _ in range(ROUNDS):
            for p, t in trainers.items():
                start = time.perf_counter()
                t.advance(steps)
                rates[p].append(steps / (time.perf_counter() - start))
    finally:
        for t in trainers.values():
            t.close()
    return rates


def print_sharpness_cost(steps: int, batch: int) -> None:
    print("sharpness probe (steps/s: median, min-max of the rounds; cost: the median's slowdown against off):")
    for demo, settings in (("sparse-penalty", {"variant": "logits", "batch_size": batch}),
                           ("policy-value", {"batch_size": batch}),
                           ("edge-of-stability", {"batch_size": "full", "optimizer": "sgd"})):
        rates = sharpness_cost(demo, settings, steps)
        off = float(np.median(rates["off"]))
        for p, found in rates.items():
            median = float(np.median(found))
            cost = "" if p == "off" else f"   cost {off / median - 1:+.0%}"
            print(f"{demo if p == 'off' else '':32s} sharpness={p:8s} {median:7.0f} steps/s "
                  f"({min(found):.0f}-{max(found):.0f}){cost}")


def arguments(parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """``--steps`` and ``--batch-size`` (and what ``parser`` adds), printed with the machine's cores (shared with
    ``your_code.py``)."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, batch {args.batch_size}, {args.steps} timed steps each")
    return args


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sharpness-only", action="store_true", help="only the sharpness probe's cost")
    args = arguments(parser)
    if args.sharpness_only:
        print_sharpness_cost(args.steps, args.batch_size)
        return
    for name, bench in (("sparse-penalty (3x100 dense)", sparse_penalty), ("policy-value (conv, two heads)", policy_value)):
        trainer, fit = bench(args.steps, args.batch_size)
        print(f"{name:32s} model.fit {fit:7.0f} steps/s; {compile_times(name.split()[0])}")
        for probe, rate in trainer.items():
            print(f"{'':32s} trainer, term_grads={probe:8s} {rate:7.0f} steps/s   ratio {rate / fit:.2f}x")
    print("two-branch, trainer only (term_grads=every-10):")
    for alpha in (0.5, "trainable", "uncertainty", "gradnorm", "pcgrad"):
        rate = trainer_rate("two-branch", {"alpha": alpha, "batch_size": args.batch_size}, args.steps)
        print(f"{'':32s} alpha={alpha!s:12s} {rate:7.0f} steps/s")
    print_sharpness_cost(args.steps, args.batch_size)


if __name__ == "__main__":
    main()
