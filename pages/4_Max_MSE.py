"""Maximised MSE: -MSE, inverse MSE and the negative learning rate."""

import streamlit as st

import dashboard
from lossviz import charts


def prediction_view(jobs):
    dashboard.prediction_views(jobs, "Generator outputs against their targets",
                               lambda trainer, out: charts.prediction_scatter(out["y"], trainer.data.targets["y"]))


st.set_page_config(page_title="lossviz - max MSE", layout="wide")
dashboard.demo_page("max-mse", prediction_view)
