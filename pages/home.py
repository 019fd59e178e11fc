"""lossviz home page: one card per loss family, with its formula, its curve and a link to its page."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # works however the page is started

from dashboard import navigation  # noqa: E402

navigation.enter(__file__)  # through the titled navigation, however the page was reached

import streamlit as st  # noqa: E402

from dashboard.common import family, analytic_figure  # noqa: E402
from lossviz import demos, settings as config  # noqa: E402

st.set_page_config(page_title="lossviz", layout="wide")
st.title("lossviz")
st.markdown("Explore custom training losses of Keras models: pick a loss, turn its knobs, train a small model "
            "live and see its terms, its gradients per layer, and exactly when and where NaN or inf appear.")

# a card per loss family with its curve, two to a row; then a link to each other page (a formula of yours)
families = [name for name in demos.BUILT_IN if demos.DEMOS[name].page.card and demos.DEMOS[name].page.latex]
for start in range(0, len(families), 2):
    for column, demo in zip(st.columns(2), families[start:start + 2]):
        card = family(demo)
        with column.container(border=True):
            st.subheader(card["title"])
            st.markdown(card["problem"])
            st.latex(card["latex"])
            figure = analytic_figure(demo, tuple(sorted(config.resolve(demo).items())))
            figure.update_layout(height=300, title=None, showlegend=False)
            st.plotly_chart(figure, key=f"home_{demo}")
            st.page_link(card["page"], label=f"Open {card['title']}", icon="➡️")

for demo in (name for name in demos.BUILT_IN if name not in families):
    card, page = family(demo), demos.DEMOS[demo].page
    with st.container(border=True):
        st.subheader(card["title"])
        st.markdown(card["problem"])
        st.page_link(card["page"], label=page.link or f"Open {card['title']}", icon="✍️" if page.link else "➡️")

with st.container(border=True):
    st.subheader("Teaching a class")
    st.markdown("Lessons, one per question: a question for the room, its answer behind Reveal, a run and the chart it "
                "is about, step by step; a presenter view for a projector, and every step in the address.")
    st.page_link("pages/8_Lessons.py", label="Open the lessons", icon="🎓")
