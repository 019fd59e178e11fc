"""A formula loss against the equal built-in loss, and how long a formula takes to parse and compile.

- training speed: the clipped sparse BCE written as a formula (demo ``custom``) against ``sparse-penalty`` with
  ``variant=clipped``, same net, data, batch and seed; each timed three times, alternating, best taken;
- parse and compile (the ``keras.ops`` function, traced on a small batch) of every preset, median of 20.

    python benchmarks/formula.py [--steps 3000]

Aim: the formula trains at >= 0.9x the built-in loss; parsing and compiling takes < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from lossviz import formula  # noqa: E402
from lossviz.training import Trainer  # noqa: E402

CLIPPED = "-(w * y * log(clip(p, eps, 1 - eps)) + (1 - y) * log(1 - clip(p, eps, 1 - eps))); w=10, eps=1e-7"
RUNS = {"formula (custom)": ("custom", {"loss": CLIPPED}), "built-in (variant=clipped)": ("sparse-penalty",
                                                                                        {"variant": "clipped"})}


def steps_per_second(demo: str, settings: dict, steps: int) -> float:
    with Trainer(demo, settings, seed=0) as t:
        list(t.run(40))  # trace and warm up
        start = time.perf_counter()
        list(t.run(steps))
        return steps / (time.perf_counter() - start)


def parse_and_compile_ms(task: str, text: str) -> float:
    values = {"y": np.zeros((32, 1), np.float32), "p": np.full((32, 1), 0.5, np.float32),
              "z": np.zeros((32, 1), np.float32), "yhat": np.zeros((32, 1), np.float32),
              "r": np.zeros((32, 1), np.float32)}
    times = []
    for _ in range(20):
        start = time.perf_counter()
        found = formula.parse(text, task)
        found.compile()(values, found.parameters)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, {args.steps} steps a run, batch 32")
    best = {name: 0.0 for name in RUNS}
    for _ in range(3):
        for name, (demo, settings) in RUNS.items():
            best[name] = max(best[name], steps_per_second(demo, settings, args.steps))
    for name, rate in best.items():
        print(f"{name:28s} {rate:7.0f} steps/s")
    formula_rate, builtin_rate = best.values()
    print(f"formula / built-in: {formula_rate / builtin_rate:.2f}x")
    for name, (task, text) in formula.PRESETS.items():
        print(f"parse + compile + first call, {name:58s} {parse_and_compile_ms(task, text):5.1f} ms")


if __name__ == "__main__":
    main()
