"""Weighted two-branch loss: fixed, trainable and uncertainty-weighted alpha."""

import streamlit as st

import dashboard
from lossviz import charts


def trajectory_view(jobs):
    st.plotly_chart(charts.branch_trajectory({name: job.records for name, job in jobs.items()}),
                    key="trajectory")


st.set_page_config(page_title="lossviz - two branches", layout="wide")
dashboard.demo_page("two-branch", trajectory_view)
