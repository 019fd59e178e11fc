"""Maximised MSE: -MSE, inverse MSE and the negative learning rate."""

import streamlit as st

import dashboard


def prediction_view(jobs):
    charts = dashboard._lib()[0]
    st.subheader("Generator outputs against their targets")
    for column, (name, job) in zip(st.columns(len(jobs)), jobs.items()):
        out = job.trainer.predict()
        column.markdown(f"**{name}**")
        column.plotly_chart(charts.prediction_scatter(out["y"], job.trainer.data.targets["y"]),
                            key=f"scatter_{name}")


st.set_page_config(page_title="lossviz - max MSE", layout="wide")
dashboard.demo_page("max-mse", prediction_view)
