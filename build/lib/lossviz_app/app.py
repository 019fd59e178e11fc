"""lossviz dashboard: ``streamlit run app.py``. The navigation of its pages, each with its title and icon."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the shared page parts, from any directory

import streamlit as st  # noqa: E402

from dashboard import navigation  # noqa: E402  (no TensorFlow: the titles come first)

st.set_page_config(page_title="lossviz", layout="wide")
navigation.run()
