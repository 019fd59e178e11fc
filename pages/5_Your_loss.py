"""Your loss: a formula typed on the page, with every section of a demo page."""

import streamlit as st

import dashboard
from lossviz import charts


def view(jobs):
    first = next(iter(jobs.values())).trainer
    if first.settings["task"] == "binary":
        dashboard.prediction_views(jobs, "Predicted probabilities on the whole series",
                                   lambda trainer, out: charts.prediction_histogram(out["probability"],
                                                                                    trainer.data.targets["y"]))
    else:
        dashboard.prediction_views(jobs, "Predictions against their targets",
                                   lambda trainer, out: charts.prediction_scatter(out["y"], trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - your loss", layout="wide")
dashboard.demo_page("custom", view)
