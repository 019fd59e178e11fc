"""The scenarios section: the questions' set-ups, loaded and started with one button, with what to look at."""

from __future__ import annotations

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
            controls.load(demo, links.RunState(dict(scenario.settings), 0, scenario.steps,
                                               schedule=list(scenario.schedule)))
            st.session_state[f"{demo}:autostart"] = scenario
            st.rerun()


def autostart(demo: str, start) -> None:
    """Start the scenario loaded by the last run of the page, now that its settings are in the sidebar."""
    scenario = st.session_state.pop(f"{demo}:autostart", None)
    if scenario is None:
        return
    started = start()
    if started:
        st.session_state[f"{demo}:scenario"] = scenario
