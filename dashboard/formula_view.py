"""The parts of the "Your loss" page that only a formula has: its LaTeX, warnings before training, and the
Keras class to copy."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from lossviz.demos import custom


def header(settings: dict[str, Any]) -> None:
    found = custom.formula_of(settings)
    st.latex(r"\ell = " + found.latex())
    for warning in _warnings(tuple(sorted(settings.items()))):
        st.warning(warning)
    with st.expander("Copy as Keras code"):
        st.caption("A standalone `keras.losses.Loss` subclass on `keras.ops`, registered for serialisation "
                   "(save and load a model compiled with it without custom_objects).")
        st.code(found.keras_source("MyLoss"), language="python")


@st.cache_data(show_spinner=False, max_entries=64)
def _warnings(settings_items: tuple) -> list[str]:
    """What makes a valid formula useless for training, said before any run."""
    settings = dict(settings_items)
    found = custom.formula_of(settings)
    prediction = {"binary": ("p", "z"), "regression": ("yhat", "r")}[found.task]
    if not any(name in found.inputs for name in prediction):
        return [f"The loss does not depend on the prediction ({' or '.join(prediction)}): its gradient is 0, "
                "so training cannot change the model."]
    found_curves = custom.loss_curves(settings)
    values = np.concatenate([c.y for c in found_curves])
    slopes = np.concatenate([c.dy for c in found_curves])
    if not np.isfinite(values).any():
        return [f"The loss is NaN or inf at every point of its curve ({found_curves[0].x_label}): every step "
                "would be non-finite."]
    if np.all(slopes[np.isfinite(slopes)] == 0):
        return [f"The loss is flat over {found_curves[0].x_label}: its gradient is 0 everywhere it is finite, so "
                "training cannot change the model."]
    return []
