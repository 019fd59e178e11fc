"""A knob of a run: its key, default, allowed values and check, in plain Python (no TensorFlow, no other module of
lossviz). ``settings`` keeps the keys every run has; each demo (a built-in one, the formula, a file of your own
code) declares its own knobs as :class:`Param` values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingError(ValueError):
    """A wrong demo, key or value; the message is one line that names what is allowed."""


@dataclass(frozen=True)
class Param:
    key: str
    default: Any
    kind: str  # "float", "int", "choice", "alpha", "formula"
    allowed: str  # words for the error message and the UI help
    check: Callable[[Any], bool] = lambda v: True
    choices: tuple[str, ...] = ()
    structural: bool = False
    log_scale: bool = False
    help: str = ""
    shapes_data: bool = False  # the run's data are drawn with it (positive_rate): fixed for a run
    accepts: Callable[[str], bool] | None = None  # a choice that also takes values outside ``choices``
    when: Callable[[Mapping[str, Any]], bool] = lambda settings: True  # a knob of the run only when this holds

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int", "alpha")

    def parse(self, raw) -> Any:
        """A typed, checked value from a string (CLI) or a Python value (pages, API)."""
        value = raw
        try:
            if self.kind == "formula":  # checked against its task by ``resolve``
                return str(raw).strip()
            if self.kind == "choice":
                value = str(raw).strip()
                ok = value in self.choices or (self.accepts is not None and self.accepts(value))
            elif self.kind == "alpha":
                if isinstance(raw, str) and raw in self.choices:
                    return raw
                value = float(raw)
                ok = math.isfinite(value) and 0.0 <= value <= 1.0
            elif self.kind == "int":
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                value = int(raw)
                ok = self.check(value)
            else:
                value = float(raw)
                ok = math.isfinite(value) and self.check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SettingError(f"{self.key}={raw!s} is not allowed: {self.key} must be {self.allowed}")
        return value
