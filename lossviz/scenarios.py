"""Every demo's teaching scenarios (``Demo.scenarios``; the type is :class:`lossviz.scenario.Scenario`)."""

from __future__ import annotations

from . import demos, settings as config
from .scenario import Scenario


def for_demo(demo: str) -> list[Scenario]:
    return list(demos.get_demo(demo).scenarios) if demo in demos.DEMOS else []


def get(demo: str, name: str) -> Scenario:
    for s in for_demo(demo):
        if s.name == name:
            return s
    raise KeyError(f"no scenario {name!r} for {demo}")


def cli_command(scenario: Scenario, seed: int = 0) -> str:
    """The ``python -m lossviz train`` command of a scenario, its schedule as ``--at`` changes."""
    return config.cli_command(scenario.demo, config.resolve(scenario.demo, scenario.settings), scenario.steps, seed,
                              changes=scenario.schedule)


SCENARIOS: tuple[Scenario, ...] = tuple(s for name in demos.BUILT_IN for s in for_demo(name))
