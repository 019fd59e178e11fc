"""Sparse-penalty BCE: naive, clipped, from logits and the per-batch switch."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

import streamlit as st  # noqa: E402

import dashboard  # noqa: E402
from lossviz import charts  # noqa: E402


def histogram_view(jobs):
    dashboard.prediction_views(jobs, "Predicted probabilities on the whole series",
                               lambda trainer, out: charts.prediction_histogram(out["probability"],
                                                                                trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - sparse penalty", layout="wide")
dashboard.demo_page("sparse-penalty", histogram_view)
