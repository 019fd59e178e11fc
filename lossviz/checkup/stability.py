"""The check-up's curvature probe: is the learning rate past its stability limit on this loss?

A step of size lr along a direction of curvature s overshoots when s > 2/lr (for plain SGD; the optimizer's limit
in general, see ``lossviz.curvature``). The short run measures the sharpness; ``past-stability-limit`` says when it
was 2x or more over the limit (or, for SGD, over it from the first step: the initial sharpness x lr above 2), with
the lr that would be under it, and whether a NaN or a stall of the short run or of the scan coincides.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from .. import curvature, gradients
from ..knobs import sharpness_period
from ..training import Trainer
from .findings import Finding, num

EVERY = "every-50"  # the short run's probe when the settings have none: step 1 and every 50th
FACTOR = 2.0  # how far over the limit a measurement must be


def column_of(optimizer: str) -> str:
    """The sharpness an optimizer's limit is for: the preconditioned one of Adam and RMSprop."""
    return "sharpness:preconditioned" if optimizer in curvature.PRECONDITIONED else "sharpness"


def measurements(trainer: Trainer) -> list[dict]:
    """The short run's measured records with a finite sharpness and limit. Adam's and RMSprop's step 1 is left
    out: their preconditioner from a single gradient is not yet the one they train with."""
    optimizer = trainer.settings["optimizer"]
    key = column_of(optimizer)
    table = trainer.records.frame(range(len(trainer.records)))
    if key not in table:
        return []
    every = sharpness_period(trainer.settings.get("sharpness", "off"))
    table = table[gradients.measured_steps(table["step"], every)]
    if optimizer in curvature.PRECONDITIONED:
        table = table[table["step"] > 1]
    rows = [{"step": int(r["step"]), "sharpness": float(r[key]), "limit": float(r["stability_limit"])}
            for _, r in table.iterrows()]
    return [r for r in rows if math.isfinite(r["sharpness"]) and math.isfinite(r["limit"]) and r["limit"] > 0]


def past_stability_limit(trainer: Trainer, suggest: Callable, scan_rows: Sequence[dict] = ()) -> list[Finding]:
    """``past-stability-limit`` from the short run's measurements (see the module), with the scan's cells that
    coincide: those that went NaN or stalled at an lr over the one that keeps the sharpness under the limit."""
    optimizer, lr = trainer.settings["optimizer"], float(trainer.settings["lr"])
    found = measurements(trainer)
    if not found or lr <= 0:
        return []
    over = [r for r in found if r["sharpness"] >= FACTOR * r["limit"]]
    first = found[0]
    if not over and optimizer == "sgd" and first["step"] == 1 and first["sharpness"] > first["limit"]:
        over = [first]
    if not over:
        return []
    hit = max(over, key=lambda r: r["sharpness"] / r["limit"])  # the worst one: the lr below is for it
    ratio = hit["sharpness"] / hit["limit"]
    under = float(f"{0.9 * lr / ratio:.2g}")  # the limit scales as 1/lr: this lr puts the worst measurement under it
    what = "preconditioned sharpness" if optimizer in curvature.PRECONDITIONED else "sharpness"
    words = [f"At step {hit['step']} of the short run the {what} was {num(hit['sharpness'])}, {ratio:.1f}x the "
             f"stability limit {num(hit['limit'])} of {optimizer} at lr {num(lr)}: each step overshoots along the "
             f"sharpest direction (Cohen et al. 2021). lr {num(under)} or less keeps it under the limit"
             + (", if the preconditioner stays as it is." if optimizer in curvature.PRECONDITIONED else ".")]
    evidence = {"step": hit["step"], "sharpness": hit["sharpness"], "limit": hit["limit"], "lr": lr,
                "ratio": ratio, "first_over_step": over[0]["step"], "lr_under_limit": under,
                "optimizer": optimizer, "measured": len(found)}
    bad = trainer.first_nonfinite
    if bad is not None:
        words.append(f"The short run went non-finite at step {bad['step']} ({bad['first_nonfinite']}).")
        evidence["nonfinite_step"] = int(bad["step"])
    coincide = [r for r in scan_rows if r["status"] in ("diverged", "stalled") and float(r["lr"]) > under]
    if coincide:
        parts = [f"{'NaN' if r['status'] == 'diverged' else 'a stall'} at lr {num(float(r['lr']))}" for r in
                 sorted(coincide, key=lambda r: float(r["lr"]))]
        words.append("In the scan, " + ", ".join(dict.fromkeys(parts)) + ": past the limit too.")
        evidence["scan_past_limit"] = [{"lr": float(r["lr"]), "status": r["status"]} for r in coincide]
    text, change = suggest("past-stability-limit", {"lr": under})
    return [Finding("past-stability-limit", "error" if bad is not None else "warning", " ".join(words), evidence,
                    text, change)]


def with_probe(settings: dict) -> dict:
    """The short run's settings: the sharpness probe on (``EVERY``) when they leave it off."""
    if settings.get("sharpness", "off") == "off":
        settings = {**settings, "sharpness": EVERY}
    return settings
