"""Your loss: a formula typed on the page, with every section of a demo page."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.live import prediction_views  # noqa: E402
from dashboard.page import demo_page  # noqa: E402
from lossviz import charts  # noqa: E402


def view(jobs):
    first = next(iter(jobs.values())).trainer
    if first.settings["task"] == "binary":
        prediction_views(jobs, "Predicted probabilities on the whole series",
                         lambda trainer, out: charts.prediction_histogram(out["probability"],
                                                                          trainer.data.targets["y"]))
    else:
        prediction_views(jobs, "Predictions against their targets",
                         lambda trainer, out: charts.prediction_scatter(out["y"], trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - your loss", layout="wide")
demo_page("custom", view)
