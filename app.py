"""lossviz dashboard: ``streamlit run app.py``. The navigation of its pages, each with its title and icon."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the shared page parts, from any directory

import streamlit as st  # noqa: E402

from dashboard.common import NAVIGATION  # noqa: E402

st.set_page_config(page_title="lossviz", layout="wide")
st.navigation([st.Page(path, title=title, icon=icon, url_path=url or None, default=not url)
               for path, title, icon, url in NAVIGATION]).run()
