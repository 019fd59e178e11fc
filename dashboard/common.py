"""What every section of the dashboard shares: the families' texts, cached figures, number formats."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from lossviz import charts, surfaces, usercode  # first: lossviz sets TensorFlow's environment (no oneDNN) before it loads

import keras  # noqa: E402

from .navigation import ROOT

PAGE_DIR = ROOT / "pages"
# the page's own controls and state, under "<demo>:<name>" in the session (a knob of that name lives apart)
PAGE_NAMES = frozenset(
    "anatomy autostart checkup checkup_load checkup_quick checkup_show clear_schedule compare compare_key download "
    "formula_defaults land_contour land_interp land_pca land_surface landscape landscape_button landscape_log "
    "landscape_run log_y meta pace pause pending play preset query_loaded query_read query_warning reset resolution "
    "scenario scenario_pick scenario_run schedule seed smoothing span step steps stop stop_nan sweep table "
    "train".split())


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

FAMILIES: dict[str, dict[str, str]] = {
    "policy-value": {
        "title": "Masked policy/value loss (AlphaGo Zero)",
        "page": PAGE_DIR / "1_Policy_value.py",
        "problem": "A two-headed network whose loss needs both heads, and a legal-move mask. A popular answer "
                   "builds the mask from `pi == 1`: whenever the search spreads its visits over several moves, "
                   "that mask is empty and the policy head learns nothing. Here p is a softmax over the legal "
                   "moves only.",
        "latex": r"l = (z - v)^2 - \pi^\top \log p + c\,\lVert\theta\rVert^2",
    },
    "two-branch": {
        "title": "Weighted two-branch loss",
        "page": PAGE_DIR / "2_Two_branch.py",
        "problem": "Two outputs of different shapes mixed by a weight alpha. Make alpha trainable and minimise "
                   "the loss over it, as suggested, and it runs to 0 or 1, switching a branch off; learned "
                   "uncertainty weighting (Kendall et al. 2018) does not.",
        "latex": r"L = \alpha L_1 + (1 - \alpha) L_2,\quad \alpha \in [0, 1]",
    },
    "sparse-penalty": {
        "title": "Sparse-penalty binary cross-entropy",
        "page": PAGE_DIR / "3_Sparse_penalty.py",
        "problem": "Events in 2% of the hours. Plain BCE learns 'always 0'; the hand-written penalised loss "
                   "gives NaN; clipping makes it finite but flat (no gradient); the suggested per-batch "
                   "`K.switch` does not weight the positives at all. From logits it is exact.",
        "latex": r"L = -\big(\text{penalty}\cdot y \log p + (1 - y)\log(1 - p)\big)",
    },
    "max-mse": {
        "title": "Maximised MSE",
        "page": PAGE_DIR / "4_Max_MSE.py",
        "problem": "A generator that must maximise an MSE. -MSE and a negative learning rate climb the same hill; "
                   "1/MSE only pushes the nearest points away and its gradient explodes near a zero residual.",
        "latex": r"-\tfrac{1}{n}\sum (\hat y - y)^2 \quad\text{or}\quad \tfrac{1}{n}\sum \frac{1}{(\hat y - y)^2 + \epsilon}",
    },
    "custom": {
        "title": "Your loss",
        "page": PAGE_DIR / "5_Your_loss.py",
        "problem": "Type your own per-sample loss as a formula (or start from a preset) and get the whole treatment: "
                   "its curve and derivative, live training with its parameters as knobs, where it turns NaN, its "
                   "landscape and stability map, and a Keras class to copy. The text is parsed and compiled into "
                   "`keras.ops`; nothing you type is executed.",
        "latex": "",
    },
}


def family(demo: str) -> dict[str, str]:
    """A page's title and texts: a built-in family's, or a file's of your own code."""
    if demo in FAMILIES:
        return FAMILIES[demo]
    code = usercode.load(demo)
    knobs = ", ".join(f"`{k}`" + (" (needs a Python value: it shapes the graph)" if k in code.static else "")
                      for k in code.loss.knobs) or "none"
    terms = ", ".join(f"`{t}`" for t in code.terms)
    return {
        "title": usercode.label(demo),
        "page": "",
        "problem": (f"Your own code, `{demo}`: the loss is a {code.loss.form}"
                    + (f" with the terms {terms}" if terms else "") + f"; its knobs: {knobs}. "
                    + ("Its model and data are the file's own." if code.own_model else
                       "It runs on the formula page's net and data (`task`: binary or regression).")
                    + " The file was named when the server started; this page cannot load another."),
        "latex": "",
        "note": code.note,
    }


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


def jobs(demo: str) -> dict[str, Any]:
    """This session's training jobs of a demo, by run name (``A``, ``B``)."""
    return st.session_state.setdefault("jobs", {}).setdefault(demo, {})
