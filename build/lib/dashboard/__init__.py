"""Streamlit building blocks shared by ``app.py`` and the pages; the library ``lossviz`` stays UI-free.

One module a section: ``controls`` (sidebar knobs, URL query), ``live`` (transport, live charts, NaN panel,
tables, prediction views), ``landscape``, ``stability``, ``scenarios``, ``formula_view``, ``anatomy``; ``page``
composes them; ``navigation`` (imported first, without TensorFlow) draws the titled navigation. Everything a
browser session trains lives in ``st.session_state``: its jobs run in background threads, a fragment redraws
their charts.
"""
