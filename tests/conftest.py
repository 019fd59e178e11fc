import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The suite trains on the plain (not XLA-compiled) step: compiling costs 1-7 s a structure and the suite builds over
# a hundred, while tracing the plain step costs a fraction of that; the commands and servers the tests start inherit
# it. The XLA step is tested on its own (test_step: each built-in family's default structure against the plain
# step, the fallback, one compile per structure) and the browser tests' main server runs it, as a user's does.
# LOSSVIZ_XLA=1 pytest runs everything on it.
os.environ.setdefault("LOSSVIZ_XLA", "0")

# A suite started in the background of a non-interactive shell (`cmd &`, `nohup`) inherits SIGINT ignored, and so
# would every command the tests start and interrupt with it (Ctrl-C on the CLI, a sweep to resume): give the tests
# Python's own handler, whose commands then start with the default.
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def train_csv(steps=30, nan_at=None, lr=0.01, probe=True) -> str:
    """A train CSV as the trainer writes it (the columns of a two-term demo with the probe on), for the Runs page."""
    import math

    import numpy as np

    from lossviz import records

    rng = np.random.default_rng(steps)
    rows = []
    for s in range(1, steps + 1):
        loss = float(np.exp(-s / 10) + 0.05 * rng.random())
        bad = nan_at is not None and s >= nan_at
        row = {"step": s, "loss": math.nan if bad else loss, "loss:a": loss / 2, "loss:b": loss / 2,
               "grad_norm": 1.0 / s, "grad_norm:dense": 1.0 / s, "nonfinite": 1 if bad else 0,
               "first_nonfinite": "loss" if bad else "", "nonfinite_in": "loss" if bad else "",
               "metric:accuracy": s / steps}
        if probe:
            row.update({"grad_norm@a": 0.5 / s, "grad_norm@b": 0.5 / s, "grad_norm@a:dense": 0.5 / s,
                        "grad_norm@b:dense": 0.5 / s, "cos:a|b": 0.3})
        row["set:lr"] = lr if s < steps // 2 else lr * 10
        rows.append(row)
    return records.to_csv(rows)
