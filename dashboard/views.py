"""The extra view a demo's page draws below its live charts, by the kind its declaration names
(``Demo.page.view``): the board of a policy head, the predicted probabilities, predictions against targets, the
trajectory of two branches' losses."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import streamlit as st

from lossviz import catalog, charts
from lossviz.demos import policy_value

from .state import key


def _predictions(jobs: dict[str, Any], title: str, figure: Callable[[Any, dict], Any]) -> None:
    """One column per run: ``figure(trainer, outputs)`` of the model's outputs on the run's whole data."""
    st.subheader(title)
    for i, (column, (name, job)) in enumerate(zip(st.columns(len(jobs)), jobs.items())):
        column.markdown(f"**{name}**")
        column.plotly_chart(figure(job.trainer, job.trainer.predict()), key=f"prediction_view_{i}")


def histogram(jobs, title: str) -> None:
    _predictions(jobs, title, lambda trainer, out: charts.prediction_histogram(out["probability"],
                                                                               trainer.data.targets["y"]))


def scatter(jobs, title: str) -> None:
    _predictions(jobs, title, lambda trainer, out: charts.prediction_scatter(out["y"], trainer.data.targets["y"]))


def trajectory(jobs, title: str) -> None:
    st.plotly_chart(charts.branch_trajectory({name: job.records for name, job in jobs.items()}), key="trajectory")


def board(jobs, title: str) -> None:
    st.subheader(title)
    first = next(iter(jobs.values())).trainer
    index = st.number_input("position", 0, len(first.data) - 1, 0, key=key(first.demo.name, "position"))
    for name, job in jobs.items():
        trainer = job.trainer
        out = trainer.predict(trainer.data.take(slice(index, index + 1)))
        mask = trainer.data.inputs["mask"][index:index + 1]
        p = policy_value.policy_probabilities(out["policy"], mask, trainer.settings["mask"])
        st.markdown(f"**{name}**")
        st.plotly_chart(charts.board_chart(trainer.data.targets["pi"][index], np.asarray(p)[0], mask[0]),
                        key=f"board_{name}")


KINDS = {"board": board, "histogram": histogram, "scatter": scatter, "trajectory": trajectory}


def extra_view(demo: str) -> Callable[[dict[str, Any]], None] | None:
    """The view of the demo's page, drawn for its runs (with the first run's settings: a formula's task decides)."""
    page = catalog.get(demo).page
    if page is None or page.view is None:
        return None

    def draw(jobs: dict[str, Any]) -> None:
        view = page.view_of(next(iter(jobs.values())).trainer.settings)
        if view is not None:
            KINDS[view.kind](jobs, view.title)
    return draw
