"""Per-step records (the trainer's plain dicts) as CSV text and as words: the one format the CLI, the
pages and the tests share."""

from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence, TextIO


def columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """All keys in first-seen order (every record of one run has the same keys)."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return list(seen)


def write_csv(records: Iterable[dict[str, Any]], out: TextIO, header: Sequence[str] | None = None) -> None:
    """One row per record; non-finite floats are written as ``nan``, ``inf``, ``-inf``."""
    records = list(records)
    writer = csv.DictWriter(out, fieldnames=list(header or columns(records)), lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: _cell(v) for k, v in r.items()})


def to_csv(records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    write_csv(records, buffer)
    return buffer.getvalue()


def _cell(value):
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    return value


def first_nonfinite(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first record with a non-finite value, or None."""
    return next((r for r in records if r.get("nonfinite", 0) > 0), None)


def describe_first_nonfinite(records: Sequence[dict[str, Any]]) -> str | None:
    """In words, where the first non-finite value of a run appeared, or None for a finite run."""
    first = first_nonfinite(records)
    if first is None:
        return None
    where = {"loss": "in the loss", "gradient": f"in the gradient of {first['first_nonfinite']}",
             "weight": f"in the weight {first['first_nonfinite']} after the update"}
    place = where.get(first.get("nonfinite_in", ""), first.get("first_nonfinite", ""))
    return f"step {first['step']}, {place}"


def likely_cause(demo: str, settings: dict[str, Any], records: Sequence[dict[str, Any]]) -> str | None:
    """The setting that most likely produced the first non-finite value of a run, in words."""
    first = first_nonfinite(records)
    if first is None:
        return None
    before = [r["grad_norm"] for r in records[: first["step"] - 1]]
    grew = len(before) >= 2 and before[-1] > 100 * max(min(before), 1e-12)
    lr = settings.get("lr")
    if first.get("nonfinite_in") == "weight":
        return (f"the update itself overflowed: lr={lr} times a gradient of norm {before[-1] if before else '?'} "
                "left float32 range; lower lr or set clipnorm")
    if demo == "sparse-penalty" and settings.get("variant") == "naive":
        return ("variant=naive: the sigmoid output reached exactly 0 or 1 in float32, so log(p) or log(1 - p) is "
                f"-inf and 0 * log(0) is NaN; lr={lr} drives the logits there. Use variant=logits (exact) or "
                "clipped (finite, but flat beyond the clip)")
    if demo == "max-mse" and settings.get("variant") == "inverse-mse" and settings.get("epsilon", 0) == 0:
        return "variant=inverse-mse with epsilon=0: a residual reached 0 and 1/r^2 is inf; set epsilon > 0"
    if grew:
        return (f"the gradient norm grew from {min(before):.3g} to {before[-1]:.3g} before it: lr={lr} is too "
                "large for this loss; lower it or set clipnorm")
    if first.get("nonfinite_in") == "gradient":
        return f"the loss was finite but its gradient was not (in {first['first_nonfinite']}): a non-smooth point"
    return f"lr={lr} with this loss; try a smaller lr or gradient clipping"
