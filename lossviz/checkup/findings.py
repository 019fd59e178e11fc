"""A finding of the check-up: a stable id, a severity, one sentence, its evidence in numbers, and a change."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
IDS = ("nonfinite-at-edge", "dead-gradient", "unbounded", "exploding-gradient", "constant-predictor", "term-off",
       "term-drowned", "nan-in-scan", "past-stability-limit", "cannot-overfit", "clean")


@dataclass
class Finding:
    id: str
    severity: str
    message: str
    evidence: dict[str, Any]
    suggestion: str = ""
    set: dict[str, Any] = field(default_factory=dict)  # the change, as settings a page loads (``--set`` values)
    show: dict[str, Any] | None = None  # settings and steps of a run that displays the problem

    def __post_init__(self):
        assert self.id in IDS and self.severity in SEVERITIES, (self.id, self.severity)

    @property
    def set_args(self) -> list[str]:
        from ..settings import format_value

        return [f"{k}={format_value(v)}" for k, v in self.set.items()]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "message": self.message,
                "evidence": {k: _plain(v) for k, v in self.evidence.items()},
                "suggestion": self.suggestion, "set": self.set_args, "show": self.show}


def _plain(value):
    """Evidence as JSON-safe values: non-finite floats as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def ranked(findings: list[Finding]) -> list[Finding]:
    """Worst first: by severity, then in the order of ``IDS``."""
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), IDS.index(f.id)))


def num(x: float) -> str:
    """A number in a sentence: 3 significant digits, nan / inf as such."""
    x = float(x)
    return f"{x:.3g}" if math.isfinite(x) else str(x)
