"""The scenarios section: the questions' set-ups, loaded and started with one button, with what to look at.

A button that starts a run (a scenario, a check-up's "show me") does its work in its callback, before the page's
script runs: the settings go into the sidebar's widgets and the page starts the run in that same script run.
"""

from __future__ import annotations

import streamlit as st

from lossviz import links, scenarios

from . import controls
from .state import Shown, jobs, key, page


def section(demo: str) -> None:
    found = scenarios.for_demo(demo)
    if not found:
        return
    with st.expander("Scenarios from the question", expanded=not jobs(demo)):
        chosen = st.radio("scenario", range(len(found)), format_func=lambda i: found[i].title,
                          key=key(demo, "scenario_pick"), label_visibility="collapsed")
        scenario = found[chosen]
        st.markdown(scenario.text)
        st.caption(f"Checked by the tests: {scenario.claim}.")
        st.code(scenarios.cli_command(scenario), language="bash")
        state = links.RunState(dict(scenario.settings), 0, scenario.steps, schedule=list(scenario.schedule))
        st.button("Run this scenario", key=key(demo, "scenario_run"), type="primary", on_click=start,
                  args=(demo, state, Shown(scenario.title, scenario.text)))


def start(demo: str, state: links.RunState, shown: Shown) -> None:
    """A button's callback: load ``state`` into the sidebar and have the page start it in the script run that
    follows (the widgets are drawn with its settings first), with ``shown`` above it."""
    controls.load(demo, state)
    page(demo).start = shown


def autostart(demo: str, begin) -> None:
    """Start the run a button's callback loaded (:func:`start`), now that its settings are in the sidebar."""
    here = page(demo)
    shown, here.start = here.start, None
    if shown is not None and begin():
        here.shown = shown
