"""What every section of the dashboard shares: the families' texts, cached figures, number formats."""

from __future__ import annotations

import math
from typing import Any, Mapping

import streamlit as st

from lossviz import catalog, charts, surfaces  # first: lossviz sets TensorFlow's environment (no oneDNN) before it loads

import keras  # noqa: E402

from lossviz import demos

from .paths import PAGE_DIR, ROOT  # noqa: F401
from .state import jobs  # noqa: F401  (the pages' runs, for the sections that draw them)


def _no_clear_session(*args, **kwargs) -> None:
    """Keras' ``clear_session``, turned off in the dashboard's process (see ``keep_training_smooth``)."""


def keep_training_smooth() -> None:
    """Streamlit (1.67) ends every script run, fragment reruns included, with ``keras.backend.clear_session()``
    (its ``_clean_problem_modules``) and ``gc.collect(2)``. In a server where other sessions train, that resets
    Keras' global state for every thread, clears TensorFlow's kernel cache and walks every object twice, under
    the GIL: with a live page redrawing twice a second, a run tracing its step was measured stuck at step 0 for
    40 s. lossviz never needs ``clear_session`` (one compiled step per structure, a state per run), so the dashboard's
    process turns it off; the collection is turned off in ``.streamlit/config.toml`` (``runner.postScriptGC``:
    setting it from a script resets Streamlit's page navigation)."""
    keras.backend.clear_session = _no_clear_session


keep_training_smooth()


def family(demo: str) -> dict[str, Any]:
    """A page's title and texts (its demo's ``Page``), and its page file."""
    page = catalog.get(demo).page
    return {"title": page.title, "page": PAGE_DIR.parent / page.file if page.file else "", "problem": page.problem,
            "latex": page.latex, "note": catalog.get(demo).note, "header": page.header}


class _Families(Mapping):
    """The built-in pages' texts by demo (``family``), read from their declarations."""

    def __getitem__(self, name):
        if name not in demos.BUILT_IN:
            raise KeyError(name)
        return family(name)

    def __iter__(self):
        return iter(demos.BUILT_IN)

    def __len__(self):
        return len(demos.BUILT_IN)


FAMILIES = _Families()


@st.cache_data(show_spinner=False, max_entries=64)
def analytic_figure(demo: str, settings_items: tuple):
    settings = dict(settings_items)
    found = surfaces.curves(demo, settings)
    return charts.curves_chart(found) if found else None


@st.cache_data(show_spinner=False, max_entries=16)
def surface_figure(demo: str, settings_items: tuple):
    found = surfaces.surface(demo, dict(settings_items))
    return charts.surface_chart(found) if found is not None else None


def fmt(x: Any) -> str:
    """A number for a person: 5 significant digits; nan / inf as such."""
    if isinstance(x, float):
        return f"{x:.5g}" if math.isfinite(x) else str(x)
    return str(x)


def smoothing_slider(key: str) -> float:
    """TensorBoard's smoothing slider: the weight of the debiased moving average of every line (0: off)."""
    return st.slider("smoothing", 0.0, 0.99, 0.0, 0.01, key=key,
                     help="the debiased exponential moving average TensorBoard draws; the raw values stay faint "
                          "behind, and NaN/inf never enter the average")


PRESENT_FONT = 20  # px: the presenter view's body text; its charts' axes and legends as large
PRESENT_CSS = f"""<style>
html, body, [data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li {{
  font-size: {PRESENT_FONT}px; }}
h1 {{ font-size: 1.9rem !important; padding: 0 0 0.3rem 0 !important; }}
[data-testid="stHeader"] {{ display: none; }}
.block-container, [data-testid="stMainBlockContainer"] {{ padding-top: 0.6rem !important; padding-bottom: 1rem; }}
</style>"""


def presenter_style() -> None:
    """Large type and no page header: the presenter views (a demo page's toggle, the Lessons page's present=1).
    Our own style sheet: no user text goes into it."""
    st.markdown(PRESENT_CSS, unsafe_allow_html=True)


def legible(fig, height: int, font: int = PRESENT_FONT):
    """A chart for a projector: taller, and its axes, legend and title at the size of the body text."""
    fig.update_layout(height=height, font=dict(size=font), legend=dict(font=dict(size=font)),
                      title=dict(font=dict(size=font + 2)))
    fig.update_xaxes(tickfont=dict(size=font), title_font=dict(size=font))
    fig.update_yaxes(tickfont=dict(size=font), title_font=dict(size=font))
    fig.update_annotations(font_size=font - 4)  # subplot titles and knob-change labels
    return fig
