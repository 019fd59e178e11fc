"""Streamlit building blocks shared by ``app.py`` and the pages; the library ``lossviz`` stays UI-free.

One module a section: ``controls`` (sidebar knobs, URL query), ``live`` (transport, live charts, NaN panel,
tables, prediction views), ``landscape``, ``stability``, ``scenarios``, ``formula_view``; ``page`` composes
them. Everything a browser session trains lives in ``st.session_state``: its jobs run in background threads,
a fragment redraws their charts.
"""

from __future__ import annotations

from .common import FAMILIES, analytic_figure, surface_figure  # noqa: F401
from .live import prediction_views  # noqa: F401
from .page import demo_page  # noqa: F401
