"""The Runs page: lossviz CSVs (uploaded, or from the server's runs folder) drawn with the demo pages' charts.
A file that grows (a CLI ``train`` in progress, a Keras ``Recorder``) is read again twice a second, only its new
lines, and drawn from a bounded window of its rows."""

from __future__ import annotations

import functools
import time

import pandas as pd
import streamlit as st

from lossviz import charts, html_report as report, records, runfiles

from . import live, navigation
from .common import fmt, smoothing_slider

GROWING_SECONDS = 10.0  # a file written to within this many seconds is watched as it grows
INTERVAL = 0.5


def runs_page() -> None:
    st.title("Runs")
    st.markdown("Open lossviz CSVs: runs of `python -m lossviz train`, your own `model.fit` recorded with "
                "`lossviz.keras.Recorder`, a `sweep` or a `landscape`. Upload them, or start the server with a "
                "folder (`streamlit run app.py -- --runs DIR`, or `LOSSVIZ_RUNS=DIR`): its CSVs are listed newest "
                "first, and one still being written is redrawn as it grows.")
    uploaded, problems = _uploads()
    folder = navigation.runs_folder()
    chosen: list[str] = []
    if folder:
        try:
            names = runfiles.listing(folder)
        except runfiles.RunFileError as e:
            problems.append(str(e))
            names = []
        chosen = st.multiselect(f"runs in {folder} (newest first)", names, default=names[:2], key="runs:chosen")
    for message in problems:
        st.error(message)
    left, right = st.columns([1, 2])
    log_y = left.checkbox("log scale for the loss", key="runs:log_y")
    with right:
        smoothing = smoothing_slider("runs:smoothing")
    if not uploaded and not chosen:
        st.info("No run opened yet." + ("" if folder else " (No runs folder: this server was started without one.)"))
        return
    watched = bool(chosen) and _growing(folder, chosen)

    @st.fragment(run_every=INTERVAL if watched else None)
    def draw():
        found = list(uploaded)
        for name in chosen:
            try:
                found.append(_tail(folder, name).read())
            except runfiles.RunFileError as e:
                st.error(str(e))
        _draw(found, log_y, smoothing)
        if watched and not _growing(folder, chosen):
            st.rerun()  # the files stopped growing: one full redraw, then no more polling

    draw()


def _uploads() -> tuple[list[runfiles.RunFile], list[str]]:
    files = st.file_uploader("lossviz CSVs", type=["csv"], accept_multiple_files=True, key="runs:upload",
                             help=f"up to {runfiles.MAX_BYTES // 2**20} MiB each")
    found, problems = [], []
    for upload in files or []:
        try:
            found.append(runfiles.parse(upload.getvalue(), upload.name))
        except runfiles.RunFileError as e:
            problems.append(str(e))
    return found, problems


def _tail(folder: str, name: str) -> runfiles.Tail:
    """This session's reader of a file of the folder (it keeps its place in the file between redraws)."""
    tails = st.session_state.setdefault("runs:tails", {})
    if name not in tails:
        tails[name] = runfiles.Tail(folder, name)
    return tails[name]


def _growing(folder: str, names: list[str]) -> bool:
    now = time.time()
    for name in names:
        try:
            if now - runfiles.inside(folder, name).stat().st_mtime < GROWING_SECONDS:
                return True
        except (OSError, runfiles.RunFileError):
            continue
    return False


def _draw(found: list[runfiles.RunFile], log_y: bool, smoothing: float) -> None:
    trains = [f for f in found if f.kind == "train"]
    if trains:
        firsts = [_first_nonfinite(f) for f in trains]  # a scan of the kept rows each: once per redraw
        _runs_table(trains, firsts)
        _nan_panel(trains, firsts)
        own = [f for f in trains if not f.recorder]
        fits = [f for f in trains if f.recorder]
        if own:
            _train_charts(own, log_y, smoothing)
        if fits:
            st.subheader("Recorded with lossviz.keras.Recorder")
            st.caption("A callback sees no gradients: these runs have update norms (the change of each layer's "
                       "weights over a batch) instead of gradient norms, and no per-term gradients.")
            _fit_charts(fits, log_y, smoothing)
    for f in (f for f in found if f.kind == "sweep"):
        _sweep(f)
    for f in (f for f in found if f.kind == "landscape"):
        _landscape(f)
    _downloads(found)


def _downloads(found: list[runfiles.RunFile]) -> None:
    """A standalone HTML report of each file, built when its button is pressed."""
    if not found:
        return
    st.caption("Share a run as one file: its charts in a standalone HTML page (opens offline, no lossviz needed).")
    for column, f in zip(st.columns(min(len(found), 4)) * ((len(found) + 3) // 4), found):
        stem = f.name.rsplit(".", 1)[0]
        column.download_button("Download as HTML", functools.partial(_html, f), file_name=f"{stem}.html",
                               mime="text/html", key=f"runs:html:{f.name}", help=f"the report of {f.name}")


def _html(f: runfiles.RunFile) -> str:
    return report.report([f], f"lossviz: {f.name}").html()


def _label(f: runfiles.RunFile) -> str:
    return f.name


def _runs_table(trains: list[runfiles.RunFile], firsts: list[dict | None]) -> None:
    rows = []
    for f, first in zip(trains, firsts):
        rows.append({"run": f.name, "kind": "Keras callback" if f.recorder else "lossviz run", "steps": f.rows.total,
                     "last loss": fmt(float(f.rows.column("loss")[-1])) if len(f.rows) else "",
                     "first NaN/inf": int(first["step"]) if first is not None else "",
                     **{k: fmt(v) for k, v in f.settings.items()}})
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)


def _first_nonfinite(f: runfiles.RunFile) -> dict | None:
    """The first row with a NaN/inf (and how many rows read have one), or None."""
    bad = f.rows.nonfinite_rows()
    if not len(bad):
        return None
    return {**f.rows.frame(bad[:1]).iloc[0].to_dict(), "rows": f.rows.nonfinite_total}


def _nan_panel(trains: list[runfiles.RunFile], firsts: list[dict | None]) -> None:
    for f, row in zip(trains, firsts):
        if row is not None:
            where = f", in the {row['nonfinite_in']}" if row.get("nonfinite_in") else ""
            what = (f" ({row['first_nonfinite']})" if row.get("first_nonfinite") not in ("", None, row.get("nonfinite_in"))
                    else "")
            st.warning(f"**{f.name}**: first NaN/inf at step {int(row['step'])}{where}{what}; "
                       f"{row['rows']} steps with one.")


def _windows(files: list[runfiles.RunFile]) -> dict[str, pd.DataFrame]:
    return {_label(f): records.window(f.rows) for f in files}


def _train_charts(files: list[runfiles.RunFile], log_y: bool, smoothing: float) -> None:
    data = _windows(files)
    every = 1 if any(c.startswith("grad_norm@") for f in files for c in f.rows.columns) else 0
    live.draw(charts.live_figures(data, every, log_y, smoothing=smoothing), len(data), every)


def _fit_charts(files: list[runfiles.RunFile], log_y: bool, smoothing: float) -> None:
    loss, update, metrics, *heatmaps = report.fit_figures(_windows(files), log_y, smoothing)
    st.plotly_chart(loss, key="runs:fit_loss")
    c1, c2 = st.columns(2)
    c1.plotly_chart(update, key="runs:fit_update")
    c2.plotly_chart(metrics, key="runs:fit_metrics")
    for i, heatmap in enumerate(heatmaps):
        st.plotly_chart(heatmap, key=f"runs:fit_heatmap_{i}")


def _sweep(f: runfiles.RunFile) -> None:
    st.subheader(f"Sweep: {f.name}")
    try:
        color = st.selectbox("colour the cells by", report.sweep_colours(f), key=f"runs:sweep_color:{f.name}")
        st.plotly_chart(report.sweep_figure(f, color), key=f"runs:sweep:{f.name}")
    except runfiles.RunFileError as e:
        st.error(str(e))


def _landscape(f: runfiles.RunFile) -> None:
    try:
        landscape = report.landscape_of(f)
    except runfiles.RunFileError as e:
        st.error(str(e))
        return
    st.subheader(f"Landscape: {f.name}")
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.landscape_contour(landscape), key=f"runs:contour:{f.name}")
    c2.plotly_chart(charts.landscape_surface(landscape), key=f"runs:surface:{f.name}")
