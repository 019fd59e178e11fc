"""A demo page: title and texts, the sidebar, scenarios, the loss over its input, the live section and the
stability map; the state of the page is kept in the address. Everything the page draws of a demo comes from its
declaration (``lossviz.demos.Demo``): the built-in families, the formula and a file of your own code alike."""

from __future__ import annotations

import streamlit as st

from . import checkup, controls, formula_view, live, scenarios, sessions, stability, views
from lossviz import catalog, usercode

from .common import analytic_figure, family as family_of, jobs, presenter_style, surface_figure
from .state import key, page

HEADERS = {"formula": formula_view.header}  # the sections a demo's page may draw above its scenarios


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


def demo_page(demo: str) -> None:
    sessions.watch()  # this session's runs stop once its browser is gone
    family = family_of(demo)
    st.title(family["title"])
    present = st.toggle("presenter view", key=key(demo, "present"),
                        help="for a projector: only the transport, the knobs on the left and the loss chart, in "
                             "large type")
    if present:
        presenter_style()
    else:
        st.markdown(family["problem"])
        if family["note"]:  # what of a file's loss is not a knob, and why
            st.info(family["note"])
        if family["latex"]:
            st.latex(family["latex"])
    controls.read_query(demo)
    here = page(demo)
    warning, here.query_warning = here.query_warning, None
    if warning:
        st.warning(f"The address holds settings lossviz cannot use ({warning}); showing the defaults.")
    loaded, here.query_loaded = here.query_loaded, False
    if loaded:
        st.info("Loaded the run in the address into the sidebar: press Train to reproduce it.")
    choice = controls.sidebar(demo)
    runs, errors = controls.validate(demo, choice)
    for message in errors:
        st.error(message)
    header = HEADERS.get(family["header"])
    if header is not None and "A" in runs and not present:
        header(runs["A"])
    if not present:
        scenarios.section(demo)
    scenarios.autostart(demo, lambda: _start(demo, runs, choice, errors))
    if present:
        live.section(demo, runs, choice, errors, None, present=True)
        if not errors:
            controls.write_query(demo, live.run_state(demo, runs, choice))
        return

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
    live.section(demo, runs, choice, errors, views.extra_view(demo))
    stability.section(demo, runs.get("A"), choice["seed"])
    if not errors:
        controls.write_query(demo, live.run_state(demo, runs, choice))


def _start(demo: str, runs, choice, errors) -> bool:
    if errors:
        return False
    for job in live.start(demo, runs, choice["steps"], choice["seed"], choice["stop_nan"], None).values():
        job.resume()
    return True
