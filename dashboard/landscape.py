"""The landscape section: the loss around a trained run's weights, computed on demand."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lossviz import charts, surfaces

from .state import key as widget_key, page


def section(demo: str, jobs: dict[str, Any], meta) -> None:
    """On demand, for a finished run: the random-plane landscape (contour and 3-D), the PCA plane with the
    training path, the initial-to-final interpolation, and the loss along the direction of greatest curvature. The result keeps the job it belongs to (a new run
    replaces it)."""
    here = page(demo)
    st.subheader("Landscape")
    c1, c2, c3 = st.columns(3)
    resolution = c1.slider("resolution (points per axis)", 11, 61, 31, step=2, key=widget_key(demo, "resolution"))
    span = c2.select_slider("span of the random plane", [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0], 1.0,
                            key=widget_key(demo, "span"))
    name = c3.selectbox("run", list(jobs), key=widget_key(demo, "landscape_run"))
    log_scale = st.checkbox("log colour scale", key=widget_key(demo, "landscape_log"))
    stored = here.landscape
    if st.button("Compute landscape", key=widget_key(demo, "landscape_button")):
        trainer = jobs[name].trainer
        bar = st.progress(0.0, text="random plane")
        result = {"job": jobs[name], "run": name, "warning": None}
        result["random"] = surfaces.random_landscape(
            trainer, resolution, span, seed=meta.seed if meta is not None else 0,
            on_progress=lambda f: bar.progress(0.6 * f, text=f"random plane: {f:.0%}"))
        try:
            result["pca"] = surfaces.trajectory_landscape(
                trainer, resolution, on_progress=lambda f: bar.progress(0.6 + 0.35 * f, text=f"training path: {f:.0%}"))
        except ValueError as e:
            result["pca"], result["warning"] = None, str(e)
        result["interpolation"] = surfaces.interpolation(trainer)
        bar.progress(0.97, text="the sharpest direction")
        result["sharpest"] = surfaces.sharpest_line(trainer)
        bar.progress(1.0, text=f"{resolution}x{resolution} grid, {len(trainer.snapshots)} weight snapshots")
        here.landscape = stored = result
    if not stored or not any(stored["job"] is job for job in jobs.values()):
        st.caption("Computes the loss around the trained weights of the chosen run, many grid points per call.")
        return
    st.caption(f"Run {stored['run']}.")
    left, right = st.columns(2)
    left.plotly_chart(charts.landscape_contour(stored["random"], log_scale), key=widget_key(demo, "land_contour"))
    right.plotly_chart(charts.landscape_surface(stored["random"]), key=widget_key(demo, "land_surface"))
    left, right = st.columns(2)
    if stored["pca"] is not None:
        left.plotly_chart(charts.landscape_contour(stored["pca"], log_scale), key=widget_key(demo, "land_pca"))
    else:
        left.warning(stored["warning"])
    right.plotly_chart(charts.interpolation_chart(stored["interpolation"]), key=widget_key(demo, "land_interp"))
    left, right = st.columns(2)
    left.plotly_chart(charts.sharpest_chart(stored["sharpest"]), key=widget_key(demo, "land_sharpest"))
    right.caption("Along the top eigenvector of the Hessian, the loss is closest to a parabola of curvature s (the "
                  "sharpness). A gradient step multiplies the distance to its bottom by 1 - lr s: past the stability "
                  "limit (lr s > 2 for plain gradient descent) that factor is below -1, and each step lands further "
                  "up the other side (the arrow).")
