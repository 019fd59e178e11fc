"""Masked policy/value loss (AlphaGo Zero): the mask modes, side by side."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.page import demo_page  # noqa: E402
from lossviz import charts, demos  # noqa: E402


def board_view(jobs):
    st.subheader("A position: target pi against the predicted p")
    first = next(iter(jobs.values())).trainer
    index = st.number_input("position", 0, len(first.data) - 1, 0, key="policy-value:position")
    for name, job in jobs.items():
        trainer = job.trainer
        out = trainer.predict(trainer.data.take(slice(index, index + 1)))
        mask = trainer.data.inputs["mask"][index:index + 1]
        p = demos.policy_probabilities(out["policy"], mask, trainer.settings["mask"])
        st.markdown(f"**{name}**")
        st.plotly_chart(charts.board_chart(trainer.data.targets["pi"][index], np.asarray(p)[0], mask[0]),
                        key=f"board_{name}")


st.set_page_config(page_title="lossviz - policy/value", layout="wide")
demo_page("policy-value", board_view)
