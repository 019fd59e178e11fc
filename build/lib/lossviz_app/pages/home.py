"""lossviz home page: one card per loss family, with its formula, its curve and a link to its page."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.common import FAMILIES, analytic_figure  # noqa: E402
from lossviz import settings as config  # noqa: E402

st.set_page_config(page_title="lossviz", layout="wide")
st.title("lossviz")
st.markdown("Explore custom training losses of Keras models: pick a loss, turn its knobs, train a small model "
            "live and see its terms, its gradients per layer, and exactly when and where NaN or inf appear.")

for row in (config.DEMO_NAMES[:2], config.DEMO_NAMES[2:4]):
    for column, demo in zip(st.columns(2), row):
        family = FAMILIES[demo]
        with column.container(border=True):
            st.subheader(family["title"])
            st.markdown(family["problem"])
            st.latex(family["latex"])
            figure = analytic_figure(demo, tuple(sorted(config.defaults(demo).items())))
            figure.update_layout(height=300, title=None, showlegend=False)
            st.plotly_chart(figure, key=f"home_{demo}")
            st.page_link(family["page"], label=f"Open {family['title']}", icon="➡️")

custom = FAMILIES["custom"]
with st.container(border=True):
    st.subheader(custom["title"])
    st.markdown(custom["problem"])
    st.page_link(custom["page"], label="Write your own loss", icon="✍️")
