"""The scenarios section: the questions' set-ups, loaded and started with one button, with what to look at."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lossviz import links, scenarios

from . import controls
from .common import jobs


def section(demo: str) -> None:
    found = scenarios.for_demo(demo)
    if not found:
        return
    with st.expander("Scenarios from the question", expanded=not jobs(demo)):
        chosen = st.radio("scenario", range(len(found)), format_func=lambda i: found[i].title,
                          key=f"{demo}:scenario_pick", label_visibility="collapsed")
        scenario = found[chosen]
        st.markdown(scenario.text)
        st.caption(f"Checked by the tests: {scenario.claim}.")
        st.code(scenario.cli_command(), language="bash")
        if st.button("Run this scenario", key=f"{demo}:scenario_run", type="primary"):
            start(demo, links.RunState(dict(scenario.settings), 0, scenario.steps, schedule=list(scenario.schedule)),
                  Shown(scenario.title, scenario.text))


@dataclass(frozen=True)
class Shown:
    """A run a button started (a scenario, a check-up's "show me"): the live section says this above it."""

    title: str
    text: str


def start(demo: str, state: links.RunState, shown: Shown) -> None:
    """Load ``state`` into the sidebar and start it on the next run of the page, with ``shown`` above it."""
    controls.load(demo, state)
    st.session_state[f"{demo}:autostart"] = shown
    st.rerun()


def autostart(demo: str, begin) -> None:
    """Start the run loaded by the last run of the page (:func:`start`), now that its settings are in the sidebar."""
    shown = st.session_state.pop(f"{demo}:autostart", None)
    if shown is None:
        return
    if begin():
        st.session_state[f"{demo}:scenario"] = shown
