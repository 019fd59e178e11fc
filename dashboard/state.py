"""One state per page: a typed object under one session key (``page:<demo>``), and the keys of every widget.

A page's widgets keep the keys they have always had (``<demo>:steps``, ``<demo>:<knob>``, ``B:<demo>:<knob>``):
:func:`key` is the one place they are made. Everything else a page remembers between reruns (the runs' labels,
a state to load into the sidebar, a scenario's schedule, what the address said, a landscape, check-ups) lives in
its :class:`PageState`. A knob of your own code named like one of the page's own controls lives apart from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from lossviz import links

from .pacing import Pace

# the page's own widgets, under "<demo>:<name>" (a knob of the same name gets "<demo>:knob:<name>")
CONTROLS = frozenset(
    "anatomy checkup checkup_load checkup_quick checkup_show clear_schedule compare compare_key download land_contour "
    "land_interp land_pca land_surface landscape_button landscape_log landscape_run log_y preset reset resolution "
    "scenario_pick scenario_run seed smoothing span step steps stop stop_nan train play pause position".split())


def key(demo: str, name: str, prefix: str = "") -> str:
    """The session key of one of a page's widgets: ``<prefix><demo>:<name>``."""
    return f"{prefix}{demo}:{name}"


def knob_key(demo: str, knob: str, prefix: str = "") -> str:
    """Where a knob's raw value lives (written by its slider and its box): ``<prefix><demo>:<knob>``, apart from the
    page's own controls when it shares a name with one (a loss's ``smoothing``)."""
    return key(demo, f"knob:{knob}" if knob in CONTROLS else knob, prefix)


@dataclass(frozen=True)
class Shown:
    """A run a button started (a scenario, a check-up's "show me"): the live section says this above it."""

    title: str
    text: str


@dataclass
class Meta:
    """The runs on the page: their settings, seed, the compared key and their labels (``A: lr=0.05``)."""

    runs: dict[str, dict[str, Any]]
    seed: int
    compare_key: str | None
    labels: dict[str, str]


@dataclass
class PageState:
    """What a page remembers between reruns, besides its widgets' values and its runs (``session_state["jobs"]``)."""

    demo: str
    meta: Meta | None = None
    pending: links.RunState | None = None  # to put into the sidebar before it is drawn
    start: Shown | None = None  # a run to start once the sidebar holds its settings (a scenario, "show me")
    shown: Shown | None = None  # what the live section says above the runs a button started
    schedule: dict[str, list] = field(default_factory=dict)  # knob changes for the next Train or Play, by run
    query_read: bool = False
    query_warning: str | None = None
    query_loaded: bool = False
    formula_defaults: dict[str, Any] = field(default_factory=dict)  # a formula's parameters' defaults, last seen
    landscape: dict[str, Any] | None = None  # the last landscape computed, with the job it belongs to
    checkups: dict[tuple, list] = field(default_factory=dict)  # findings by (settings, seed)
    pace: Pace = field(default_factory=Pace)  # the live section's redraws
    sweep_pace: Pace = field(default_factory=Pace)  # the stability map's


def page(demo: str) -> PageState:
    """This session's state of the page of ``demo``."""
    return st.session_state.setdefault(f"page:{demo}", PageState(demo))


def jobs(demo: str) -> dict[str, Any]:
    """This session's training jobs of a demo, by run name (``A``, ``B``)."""
    return st.session_state.setdefault("jobs", {}).setdefault(demo, {})
