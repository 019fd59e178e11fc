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


def describe_first_nonfinite(records: Sequence[dict[str, Any]]) -> str | None:
    """In words, where the first non-finite value of a run appeared, or None for a finite run."""
    first = next((r for r in records if r.get("nonfinite", 0) > 0), None)
    if first is None:
        return None
    where = {"loss": "in the loss", "gradient": f"in the gradient of {first['first_nonfinite']}",
             "weight": f"in the weight {first['first_nonfinite']} after the update"}
    place = where.get(first.get("nonfinite_in", ""), first.get("first_nonfinite", ""))
    return f"step {first['step']}, {place}"
