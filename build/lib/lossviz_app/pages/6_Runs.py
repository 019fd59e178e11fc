"""Runs: lossviz CSVs uploaded, or from the folder the server was started with, drawn as the demo pages draw."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.runs import runs_page  # noqa: E402

st.set_page_config(page_title="lossviz - runs", layout="wide")
runs_page()
