"""Time for a 41 x 41 loss landscape of the policy-value model: batched (many grid points per compiled
call) against the per-point loop (assign the weights, evaluate the compiled loss, once per point).

    python benchmarks/landscape.py [--resolution 41] [--samples 128]

Prints both times and their ratio from one run (aim: batched >= 5x faster and under 5 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossviz import surfaces  # noqa: E402  (first: it sets TensorFlow's environment)
from lossviz.training import Trainer  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def per_point(trainer, center, d1, d2, coords, samples: int) -> np.ndarray:
    """The loop people write: assign the model's weights, evaluate, next point."""
    compiled = trainer.compiled
    batch = trainer.eval_set.take(slice(0, samples))

    @tf.function
    def loss():
        return compiled.loss_and_terms(batch.inputs, batch.targets, trainer.hp)[0]

    out = []
    for a, b in coords:
        for variable, c, x, y in zip(compiled.trained, center, d1, d2):
            variable.assign(c + a * x + b * y)
        out.append(float(loss()))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=int, default=41)
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args()
    with Trainer("policy-value", {}, seed=0) as trainer:
        list(trainer.run(200))
        center = trainer.weights()
        rng = np.random.default_rng(0)
        d1, d2 = (surfaces.filter_normalized_direction(center, rng) for _ in range(2))
        _, _, coords = surfaces._square_grid(args.resolution, -1, 1, -1, 1)
        grid = surfaces.LossGrid(trainer, args.samples)
        grid(center, d1, d2, coords[:300])  # trace both chunk shapes first
        start = time.perf_counter()
        batched = grid(center, d1, d2, coords)
        t_batched = time.perf_counter() - start
        per_point(trainer, center, d1, d2, coords[:2], args.samples)  # trace
        start = time.perf_counter()
        looped = per_point(trainer, center, d1, d2, coords, args.samples)
        t_loop = time.perf_counter() - start
    same = np.allclose(batched, looped, rtol=1e-4, atol=1e-5, equal_nan=True)
    print(f"CPU cores: {os.cpu_count()}; {args.resolution}x{args.resolution} grid, {args.samples} samples, policy-value")
    print(f"batched   {t_batched:6.2f} s  ({1000 * t_batched / len(coords):.2f} ms a point)")
    print(f"per-point {t_loop:6.2f} s  ({1000 * t_loop / len(coords):.2f} ms a point)")
    print(f"ratio     {t_loop / t_batched:6.1f}x   same values: {same}")


if __name__ == "__main__":
    main()
