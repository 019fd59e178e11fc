"""Your loss: a formula typed on the page, with every section of a demo page."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.page import demo_page  # noqa: E402

st.set_page_config(page_title="lossviz - your loss", layout="wide")
demo_page("custom")
