"""A teaching scenario: a set-up of one of the questions behind lossviz (shared/seeds), with what to look at and a
check of its claim on the run's records (the tests run every scenario and check every claim). Each demo declares
its own (``Demo.scenarios``); :mod:`lossviz.scenarios` lists them all.

A scenario is settings, a run length and an optional schedule of knob changes ``(step, key, value)``, exactly
what ``python -m lossviz train DEMO --set ... --at STEP:KEY=VALUE --steps N`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import records as rec

Records = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    demo: str
    name: str
    title: str
    settings: dict[str, Any]
    steps: int
    text: str  # two or three sentences: what happens and where to look
    claim: str  # the checked statement, in words
    check: Callable[[Records], bool] = field(repr=False)
    schedule: tuple[tuple[int, str, Any], ...] = ()

    def holds(self, records: Records) -> bool:
        """Whether the run's records bear the claim out (a full run of ``steps`` steps)."""
        return len(records) == self.steps and bool(self.check(records))


def mean(records: Records, key: str, start: int | None = None, stop: int | None = None) -> float:
    """Mean of a column over records[start:stop] (positions, as in a list)."""
    return float(np.mean(rec.column(records, key)[start:stop]))


def first_nan_at(step: int, place: str) -> Callable[[Records], bool]:
    def check(records):
        first = rec.first_nonfinite(records)
        return first is not None and first["step"] == step and first["first_nonfinite"] == place
    return check


def finite(records: Records) -> bool:
    return rec.first_nonfinite(records) is None


column = rec.column
