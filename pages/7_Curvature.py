"""Curvature: the sharpness of the loss against the learning rate's stability limit (the edge of stability)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.page import demo_page  # noqa: E402

st.set_page_config(page_title="lossviz - curvature", layout="wide")
demo_page("edge-of-stability")
