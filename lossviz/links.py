"""A run's state as a URL query and back: settings, seed, steps, the compared setting and the knob schedule.

The query is data, parsed with the same rules as the CLI (``settings``); nothing in it is evaluated. A
malformed or hostile query raises :class:`~lossviz.settings.SettingError` with one line saying what is wrong.

    lr=0.05&variant=naive&seed=0&steps=300&compare=variant:logits&at=101:penalty=50.0&at_b=...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import settings as config

MAX_VALUES = 200  # query values in all
MAX_LENGTH = 1100  # characters in one value (a formula has up to 1,000)
SPECIAL = ("seed", "steps", "compare", "at", "at_b")
MAX_STEPS = 1_000_000

Change = tuple[int, str, Any]


@dataclass
class RunState:
    """What reproduces a run (and its comparison) on a page."""

    settings: dict[str, Any]  # run A's settings at step 1
    seed: int = 0
    steps: int = 300
    compare: tuple[str, Any] | None = None  # run B: one setting of A changed
    schedule: list[Change] = field(default_factory=list)  # A's knob changes (step, key, value)
    schedule_b: list[Change] = field(default_factory=list)  # B's own changes of its compared key

    def settings_b(self) -> dict[str, Any] | None:
        return None if self.compare is None else {**self.settings, self.compare[0]: self.compare[1]}

    def b_schedule(self) -> list[Change]:
        """B follows A's changes, except for the key it compares, which follows its own."""
        own = self.compare[0] if self.compare else None
        return sorted([c for c in self.schedule if c[1] != own] + self.schedule_b, key=lambda c: c[0])


def to_query(demo: str, state: RunState) -> dict[str, list[str]]:
    """The query of a state: settings that differ from the defaults, then the special keys."""
    query = {k: [config.format_value(v)] for k, v in config.written(demo, state.settings)}
    query["seed"], query["steps"] = [str(state.seed)], [str(state.steps)]
    if state.compare is not None:
        query["compare"] = [f"{state.compare[0]}:{config.format_value(state.compare[1])}"]
    for name, changes in (("at", state.schedule), ("at_b", state.schedule_b)):
        if changes:
            query[name] = [f"{s}:{k}={config.format_value(v)}" for s, k, v in changes]
    return query


def from_query(demo: str, query: Mapping[str, Sequence[str]]) -> RunState:
    """Parse a query (each key to its list of values) into a state; raises ``SettingError`` in one line."""
    config.check_demo(demo)
    count = sum(len(v) for v in query.values())
    if count > MAX_VALUES or any(len(str(x)) > MAX_LENGTH for v in query.values() for x in v) \
            or any(len(str(k)) > MAX_LENGTH for k in query):
        raise config.SettingError("the address holds more or longer values than a lossviz run has")
    for key, values in query.items():
        if key not in ("at", "at_b") and len(values) != 1:
            raise config.SettingError(f"{str(key)[:40]} appears {len(values)} times in the address")
    one = {k: str(v[0]) for k, v in query.items() if k not in ("at", "at_b")}
    allowed = set(config.keys(demo, one)) | set(SPECIAL)  # with a formula's parameters
    for key in query:
        if key not in allowed:
            raise config.SettingError(f"unknown key {str(key)[:40]!r} in the address; allowed: {', '.join(sorted(allowed))}")
    settings = config.resolve(demo, {k: v for k, v in one.items() if k not in SPECIAL})
    seed = _integer(one.get("seed", "0"), "seed", 0, 2**31 - 1)
    steps = _integer(one.get("steps", "300"), "steps", 1, MAX_STEPS)
    compare = None
    if "compare" in one:
        key, sep, raw = one["compare"].partition(":")
        if not sep:
            raise config.SettingError(f"compare takes KEY:VALUE, got {one['compare'][:40]!r}")
        compare = (key, config.typed(demo, config.resolve(demo, {**settings, key: raw}), key))
    state = RunState(settings, seed, steps, compare)
    state.schedule = config.schedule(demo, settings, query.get("at", ()), steps)
    if compare is not None:
        own = list(query.get("at_b", ()))
        state.schedule_b = config.schedule(demo, state.settings_b(), own, steps)
        if any(k != compare[0] for _, k, _ in state.schedule_b):
            raise config.SettingError("at_b changes only the compared setting of run B")
    elif query.get("at_b"):
        raise config.SettingError("at_b needs compare")
    return state


def _integer(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise config.SettingError(f"{name} must be an integer from {low} to {high}, got {text[:40]!r}")
    return value
