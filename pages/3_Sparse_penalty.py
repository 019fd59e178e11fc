"""Sparse-penalty BCE: naive, clipped, from logits and the per-batch switch."""

import streamlit as st

import dashboard
from lossviz import charts


def histogram_view(jobs):
    dashboard.prediction_views(jobs, "Predicted probabilities on the whole series",
                               lambda trainer, out: charts.prediction_histogram(out["probability"],
                                                                                trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - sparse penalty", layout="wide")
dashboard.demo_page("sparse-penalty", histogram_view)
