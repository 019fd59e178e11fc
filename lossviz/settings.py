"""Settings of the demos: keys, defaults, allowed values, their checks and whether a change can reach a run, in plain
Python.

Each demo declares its knobs (``Demo.params``, :class:`~lossviz.knobs.Param`); this module reads them. Nothing here
imports TensorFlow, so a wrong demo, key or value is reported at once, in one line. A setting's effect is declared
once, on its ``Param`` (``graph``: it shapes the compiled step; ``data``: the run's data; ``live``: a number fed
to the step), and every rule below reads it: the structure of a step, the ``set:`` columns, a change mid-run.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable, Mapping, Sequence

from . import demos
from .knobs import (COMMON_KEYS, TERM_GRADS, TERM_GRADS_DEFAULT, TRAINING_KEYS, Param, SettingError,  # noqa: F401
                    common, term_period)  # (re-exported: settings.Param, settings.SettingError, settings.common...)

DEMO_NAMES = demos.BUILT_IN


def is_file(name) -> bool:
    """Whether a demo name names a file of your own code (``path.py`` or ``path.py:NAME``)."""
    return isinstance(name, str) and name.partition(":")[0].endswith(".py")


def file_label(name: str) -> str:
    """What a page calls a file's demo: the file's name, and ``:NAME`` when the loss is not ``loss``."""
    path, _, obj = name.partition(":")
    return path.replace("\\", "/").rsplit("/", 1)[-1] + (f":{obj}" if obj and obj != "loss" else "")


def spec(demo: str) -> demos.Demo:
    """The demo's declaration (raises ``SettingError`` for an unknown one)."""
    return demos.get_demo(demo)


def check_demo(name: str) -> str:
    return spec(name).name


def params(demo: str, settings: Mapping[str, Any] | None = None) -> tuple[Param, ...]:
    """The demo's settings, as the demo declares them (for ``custom`` also its formula's parameters)."""
    return spec(demo).params_of(settings)


def terms(demo: str) -> tuple[str, ...]:
    """The terms of the demo's loss, in record order (the per-term gradient probe needs two or more)."""
    return spec(demo).term_names


def compare(demo: str) -> tuple[str, dict[str, Any]]:
    """The setting a comparison changes first, and B's values: the question's suggestion against the fix."""
    return spec(demo).compare


def main_metric(demo: str, settings: Mapping[str, Any] | None = None) -> str:
    """The metric a stability map reports by default (for ``custom``: by task)."""
    return spec(demo).main_metric_of(settings)


def keys(demo: str, settings: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    return tuple(p.key for p in params(demo, settings))


def param(demo: str, key: str, settings: Mapping[str, Any] | None = None) -> Param:
    for p in params(demo, settings):
        if p.key == key:
            return p
    note = spec(demo).note
    raise SettingError(f"unknown key {key!r} for {demo}; allowed: {', '.join(keys(demo, settings))}"
                       + (f" ({note})" if note else ""))


def defaults(demo: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {p.key: p.default for p in params(demo, settings)}


def _assign(demo: str, settings: dict[str, Any], key: str, raw) -> None:
    """Parse ``raw`` into ``settings``: under ``key``, or under the key its value names (``alpha=trainable`` sets
    the graph-shaping ``alpha_mode``), with what the knob implies (a number for alpha: ``alpha_mode=fixed``)."""
    p = param(demo, key, settings)
    aliased = p.alias(raw) if p.alias is not None else None
    if aliased is not None:
        key, raw = aliased
        p = param(demo, key, settings)
    settings[key] = p.parse(raw)
    settings.update(p.implies)


def typed(demo: str, settings: Mapping[str, Any], key: str) -> Any:
    """A setting's value as a person types it: a knob the run does not have because another setting took its place
    (alpha under ``alpha_mode=trainable``) reads as that setting's value (``trainable``)."""
    if key in settings:
        return dict.__getitem__(settings, key) if isinstance(settings, dict) else settings[key]
    p = param(demo, key, settings)
    for other in params(demo, settings):
        if p.alias is not None and other.key in settings and p.alias(settings[other.key]) == (other.key,
                                                                                               settings[other.key]):
            return settings[other.key]
    return p.default


class Settings(dict):
    """A run's settings (what :func:`resolve` returns): a plain dict of the run's own keys, where a knob another
    setting replaced reads as that setting's value, as a person types it (``settings["alpha"]`` of a run with
    ``alpha_mode=trainable`` is ``"trainable"``; ``"alpha" in settings`` is false)."""

    def __init__(self, demo: str, values: Mapping[str, Any]):
        super().__init__(values)
        self.demo = demo

    def __missing__(self, key):
        try:
            p = param(self.demo, key, self)
        except SettingError:
            raise KeyError(key) from None
        if p.alias is None or p.when(self):
            raise KeyError(key)
        return typed(self.demo, self, key)


def resolve(demo: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The demo's defaults with ``overrides`` parsed and checked; raises :class:`SettingError`. The demo's first keys
    come first (the formula's task and text: its parameters are settings too)."""
    overrides = dict(overrides or {})
    first: dict[str, Any] = {}
    for key in spec(demo).first_keys:
        p = param(demo, key, first)
        first[key] = p.parse(overrides.pop(key, p.default))
    settings = {**defaults(demo, first), **first}
    for key, raw in overrides.items():
        _assign(demo, settings, key, raw)
    # a knob another setting turned off (alpha under a mode) is not a setting of the run
    declared = {p.key: p for p in params(demo, settings)}
    return Settings(demo, {key: value for key, value in settings.items() if declared[key].when(settings)})


def structure(demo: str, settings: Mapping[str, Any]) -> tuple:
    """The settings that shape the compiled graph (the cache key of a built model and step)."""
    return (demo, *((p.key, p.shaping(settings[p.key])) for p in params(demo, settings) if p.effect == "graph"))


def effective_lr(demo: str, settings: Mapping[str, Any]) -> float:
    """The learning rate given to the optimizer (max-mse's neg-lr variant turns any lr into -|lr|)."""
    found = spec(demo).learning_rate
    return found(settings) if found is not None else float(settings["lr"])


def parse_assignment(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SettingError(f"--set takes KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def knob_keys(demo: str, settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The numeric settings of a run (the ``set:<key>`` columns of its records)."""
    return tuple(p.key for p in params(demo, settings) if p.numeric and p.when(settings))


def live_change(demo: str, settings: Mapping[str, Any], key: str, raw) -> Any:
    """``raw`` parsed and checked for a run whose settings are ``settings``, so that it can apply from the
    next step on; raises :class:`SettingError` naming the key for a bad value or a key that cannot change
    during a run (one that shapes the compiled graph or the data)."""
    p = param(demo, key, settings)
    aliased = p.alias(raw) if p.alias is not None else None
    if aliased is not None:
        if param(demo, aliased[0], settings).effect != "live":
            raise SettingError(f"{key}={raw} shapes the compiled graph, so it cannot change during a run: set it for "
                               "the whole run")
        if aliased[0] == key:  # a word for a value of its own (batch_size=full)
            raw = aliased[1]
    if p.effect == "graph":
        raise SettingError(f"{key} shapes the compiled graph, so it cannot change during a run: set it for the whole "
                           "run")
    if p.effect == "data":
        raise SettingError(f"{key} shapes the run's data, so it cannot change during a run: set it for the whole run")
    if not p.when(settings):
        raise SettingError(f"{key} shapes the compiled graph in this run (another setting of the run decides it), so "
                           "it cannot change during the run: set it for the whole run")
    return p.parse(raw)


def parse_change(text: str) -> tuple[int, str, str]:
    """``"STEP:KEY=VALUE"`` -> ``(STEP, KEY, VALUE)`` (the CLI's ``--at``)."""
    step, sep, assignment = text.partition(":")
    try:
        number = int(step)
    except ValueError:
        number = 0
    if not sep or number < 1:
        raise SettingError(f"--at takes STEP:KEY=VALUE with STEP an integer >= 1, got {text!r}")
    key, value = parse_assignment(assignment)
    return number, key, value


def schedule(demo: str, settings: Mapping[str, Any], texts: Sequence[str], steps: int) -> list[tuple[int, str, Any]]:
    """Checked ``STEP:KEY=VALUE`` changes (the CLI's ``--at``, the page's address) in step order: each key may
    change during a run, each value is allowed, each step lies in a run of ``steps`` steps."""
    current = dict(settings)
    changes = []
    for step, key, raw in sorted((parse_change(str(t)) for t in texts), key=lambda c: c[0]):
        if step > steps:
            raise SettingError(f"{step}:{key}={raw}: step {step} is past the run's {steps} steps")
        value = live_change(demo, current, key, raw)
        current[key] = value
        changes.append((step, key, value))
    return changes


def written(demo: str, settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The settings a reproducing command or an address carries: those that differ from the defaults (and those the
    demo always writes), under the key a person types (``alpha=trainable``), in the demo's order; a knob the run
    does not use (alpha under a mode) is left out."""
    base = defaults(demo, settings)
    always = spec(demo).always_written
    found = []
    for p in params(demo, settings):
        if p.key not in settings:
            continue
        if settings[p.key] != base[p.key] or p.key in always:
            value = settings[p.key]
            found.append((_written_key(demo, p, settings), (p.words or {}).get(value, value)))
    return found


def _written_key(demo: str, p: Param, settings: Mapping[str, Any]) -> str:
    """The key under which a value is typed: that of the knob whose alias sets it, where there is one."""
    for other in params(demo, settings):
        if other.alias is not None and other.alias(settings[p.key]) == (p.key, settings[p.key]):
            return other.key
    return p.key


def cli_command(demo: str, settings: Mapping[str, Any], steps: int, seed: int, command: str = "train",
                changes: Sequence[tuple[int, str, Any]] = ()) -> str:
    """The ``python -m lossviz`` command that reproduces a run (only the keys that differ from defaults),
    with an ``--at STEP:KEY=VALUE`` for every knob change ``(step, key, value)`` made during the run."""
    parts = ["python", "-m", "lossviz", command, demo]
    for key, value in written(demo, settings):
        parts += ["--set", shlex.quote(f"{key}={format_value(value)}")]
    for step, key, value in changes:
        parts += ["--at", shlex.quote(f"{step}:{key}={format_value(value)}")]
    parts += ["--steps", str(steps), "--seed", str(seed)]
    return " ".join(parts)


def format_value(value) -> str:
    """A setting as text that parses back to the same value (floats round-trip through ``repr``)."""
    return repr(value) if isinstance(value, float) else str(value)


class _ByDemo(Mapping):
    """A read-only view of one field of every registered demo (the declarations hold it once)."""

    def __init__(self, field: Callable[[demos.Demo], Any]):
        self._field = field

    def __getitem__(self, name):
        return self._field(spec(name))

    def __iter__(self):
        return iter(demos.names())

    def __len__(self):
        return len(demos.names())


TERMS = _ByDemo(lambda d: d.term_names)  # the terms of each demo's loss, in record order
PARAMS = _ByDemo(lambda d: d.params_of({}))  # each demo's knobs at its defaults
