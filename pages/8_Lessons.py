"""Lessons: a question for the room, a run, the one or two charts it is about; Previous and Next (lesson=ID&step=K)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.lessons import lessons_page, presenting  # noqa: E402

st.set_page_config(page_title="lossviz - lessons", layout="wide",
                   initial_sidebar_state="collapsed" if presenting() else "auto")
lessons_page()
