"""Streamlit building blocks shared by ``app.py`` and the pages; the library ``lossviz`` stays UI-free.

One module a section: ``controls`` (sidebar knobs, URL query), ``live`` (transport, live charts, NaN panel,
tables), ``landscape``, ``stability``, ``scenarios``; ``page`` composes them. Everything a browser session
trains lives in ``st.session_state``: its jobs run in background threads, a fragment redraws their charts.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from .common import FAMILIES, analytic_figure, surface_figure  # noqa: F401
from .page import demo_page  # noqa: F401


def prediction_views(jobs: dict[str, Any], title: str, figure: Callable[[Any, dict], Any]) -> None:
    """One column per run: ``figure(trainer, outputs)`` of the model's outputs on the run's whole data."""
    st.subheader(title)
    for i, (column, (name, job)) in enumerate(zip(st.columns(len(jobs)), jobs.items())):
        column.markdown(f"**{name}**")
        column.plotly_chart(figure(job.trainer, job.trainer.predict()), key=f"prediction_view_{i}")


