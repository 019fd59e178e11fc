"""Sparse-penalty BCE: naive, clipped, from logits and the per-batch switch."""

import streamlit as st

import dashboard


def histogram_view(jobs):
    charts = dashboard._lib()[0]
    st.subheader("Predicted probabilities on the whole series")
    for column, (name, job) in zip(st.columns(len(jobs)), jobs.items()):
        out = job.trainer.predict()
        column.markdown(f"**{name}**")
        column.plotly_chart(charts.prediction_histogram(out["probability"], job.trainer.data.targets["y"]),
                            key=f"histogram_{name}")


st.set_page_config(page_title="lossviz - sparse penalty", layout="wide")
dashboard.demo_page("sparse-penalty", histogram_view)
