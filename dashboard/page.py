"""A demo page: title and formula, the sidebar, scenarios, the loss over its input, the live section and
the stability map; the state of the page is kept in the address."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from . import checkup, controls, formula_view, live, scenarios, sessions, stability
from lossviz import catalog, usercode

from .common import analytic_figure, family as family_of, jobs, surface_figure


def code_page(name: str) -> None:
    """The page of a file of your own code (named on the server's command line or in ``LOSSVIZ_CODE``)."""
    st.set_page_config(page_title=f"lossviz - {usercode.label(name)}", layout="wide")
    try:
        catalog.get(name)
    except usercode.CodeError as e:  # the file cannot be used: say why; every other page keeps working
        st.title(usercode.label(name))
        st.error(str(e))
        return
    demo_page(name)


def demo_page(demo: str, extra_view: Callable[[Any], None] | None = None) -> None:
    sessions.watch()  # this session's runs stop once its browser is gone
    family = family_of(demo)
    st.title(family["title"])
    st.markdown(family["problem"])
    if family.get("note"):  # what of a file's loss is not a knob, and why
        st.info(family["note"])
    if family["latex"]:
        st.latex(family["latex"])
    controls.read_query(demo)
    warning = st.session_state.pop(f"{demo}:query_warning", None)
    if warning:
        st.warning(f"The address holds settings lossviz cannot use ({warning}); showing the defaults.")
    if st.session_state.pop(f"{demo}:query_loaded", False):
        st.info("Loaded the run in the address into the sidebar: press Train to reproduce it.")
    choice = controls.sidebar(demo)
    runs, errors = controls.validate(demo, choice)
    for message in errors:
        st.error(message)
    if demo == "custom" and "A" in runs:
        formula_view.header(runs["A"])
    scenarios.section(demo)
    scenarios.autostart(demo, lambda: _start_scenario(demo, runs, choice, errors))

    if "A" in runs:
        items = tuple(sorted(runs["A"].items()))
        curves = analytic_figure(demo, items)
        if curves is not None:
            with st.expander("The loss over its input, for these settings", expanded=not jobs(demo)):
                st.plotly_chart(curves, key="analytic")
                figure = surface_figure(demo, items)
                if figure is not None:
                    st.plotly_chart(figure, key="surface")

    checkup.section(demo, runs.get("A") if not errors else None, choice["seed"], choice["steps"] or 300)
    live.section(demo, runs, choice, errors, extra_view)
    stability.section(demo, runs.get("A"), choice["seed"])
    if not errors:
        controls.write_query(demo, live.run_state(demo, runs, choice))


def _start_scenario(demo: str, runs, choice, errors) -> bool:
    if errors:
        return False
    for job in live.start(demo, runs, choice["steps"], choice["seed"], choice["stop_nan"], None).values():
        job.resume()
    return True
