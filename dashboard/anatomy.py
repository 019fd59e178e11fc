"""The gradient-anatomy section: each loss term's own gradient norm, the cosine between terms (conflicts
shaded), and a layer x term share heatmap at a chosen step, with what they say in words."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from lossviz import charts, gradients, records

from .state import key as widget_key


def _probed(current: dict[str, Any]) -> dict[str, Any]:
    """The runs whose records carry the per-term gradient probe."""
    return {name: job for name, job in current.items()
            if len(job.records) and gradients.probe_terms(job.records.columns or [])}


def live(figures: dict[str, Any], every: int) -> None:
    """Inside the live fragment: the per-term norms and the cosines of every probed run (``charts.live_figures``)."""
    if "term_grad_chart" not in figures:
        return
    st.markdown("**Gradient anatomy**: each term's own gradient "
                + (f"(measured every {every} steps)" if every > 1 else "(measured every step)"))
    left, right = st.columns(2)
    left.plotly_chart(figures["term_grad_chart"], key="term_grad_chart")
    right.plotly_chart(figures["term_cosine_chart"], key="term_cosine_chart")


def section(demo: str, current: dict[str, Any]) -> None:
    """After a run (paused or ended): which term drives which layer at a chosen step, and the words."""
    probed = _probed(current)
    if not probed:
        return
    st.subheader("Gradient anatomy")
    last = max(job.trainer.step for job in probed.values())
    step = last
    if last > 1:
        step = st.slider("step", 1, last, last, key=widget_key(demo, "anatomy:step"),
                         help="the share heatmaps show the probe's measurement at or before this step")
    for i, (column, (name, job)) in enumerate(zip(st.columns(len(probed)), probed.items())):
        recs = job.records
        steps = records.column(recs, "step")
        measured = np.flatnonzero(gradients.measured_steps(steps, job.trainer.term_every) & (steps <= step))
        if not len(measured):
            column.info(f"{name}: no measurement at or before step {step}")
            continue
        record = recs[int(measured[-1])]
        column.plotly_chart(charts.term_share_heatmap(record, f"({name})"), key=f"term_share_{i}")
        table = records.window(recs)
        table = table[gradients.measured_steps(table["step"], job.trainer.term_every) & (table["step"] <= step)]
        recent = table.tail(WORDS_WINDOW)
        column.markdown(f"Over the {len(recent)} measured steps up to step {int(recent['step'].iloc[-1])}:\n"
                        + "\n".join(f"- {w}" for w in gradients.describe(recent, demo)))


WORDS_WINDOW = 50  # the words read the mean over this many of the latest measured steps
