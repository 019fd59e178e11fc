"""Maximised MSE: -MSE, inverse MSE and the negative learning rate."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

import streamlit as st  # noqa: E402

import dashboard  # noqa: E402
from lossviz import charts  # noqa: E402


def prediction_view(jobs):
    dashboard.prediction_views(jobs, "Generator outputs against their targets",
                               lambda trainer, out: charts.prediction_scatter(out["y"], trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - max MSE", layout="wide")
dashboard.demo_page("max-mse", prediction_view)
