"""The stability-map section: sweep one or two settings, watch the cells fill in, load a cell into the sidebar."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from lossviz import charts, links, records
from lossviz import settings as config
from lossviz import sweep as sweeps

from . import controls, pacing
from .state import key as widget_key, page


def _axis_values(demo: str, key: str, slot: str, base: dict[str, Any]) -> list[Any] | None:
    """Controls for the values of one swept setting: a choice list (an alpha mode among them), or a numeric range
    (log-spaced for lr, penalty, epsilon, c). Returns the raw values, or None after showing what is wrong."""
    p = config.param(demo, key, base)
    if p.kind == "choice":
        return st.multiselect(f"{key} values", p.choices, default=list(p.choices),
                              key=widget_key(demo, f"sweep:{slot}:values"))
    if p.slider is not None and p.slider.scale == "linear":  # its declared range (alpha: 0 to 1)
        low_default, high_default = p.slider.low, p.slider.high
    else:
        low_default = p.default / 100 if p.log_scale and p.default > 0 else (p.default if p.default else 0.0)
        high_default = p.default * 10 if p.log_scale and p.default > 0 else (p.default * 4 if p.default else 1.0)
    a, b, c = st.columns(3)
    low = a.text_input(f"{key} from", config.format_value(low_default), key=widget_key(demo, f"sweep:{slot}:low"))
    high = b.text_input(f"{key} to", config.format_value(high_default), key=widget_key(demo, f"sweep:{slot}:high"))
    count = c.number_input(f"{key} points", 1, 12, 4, key=widget_key(demo, f"sweep:{slot}:count"))
    log = st.checkbox(f"log scale for {key}", value=p.log_scale, key=widget_key(demo, f"sweep:{slot}:log"))
    try:
        lo, hi = p.parse(low), p.parse(high)
        if log and (lo <= 0 or hi <= 0):
            raise config.SettingError(f"a log-scale range of {key} needs values > 0")
    except config.SettingError as e:
        st.error(str(e))
        return None
    values = np.geomspace(lo, hi, count) if log else np.linspace(lo, hi, count)
    if p.kind == "int":
        return sorted({int(round(v)) for v in values})
    return [float(f"{v:.3g}") for v in values]


def section(demo: str, base: dict[str, Any] | None, seed: int) -> None:
    """Sweep one or two settings, watch the cells fill in, load a cell into the sidebar."""
    st.subheader("Stability map")
    st.caption("Where does this loss train, stall or go NaN? Every cell is a run with the same seed and data, "
               "in worker processes on all cores.")
    if base is None:
        st.info("Fix the settings on the left first: the sweep starts from them.")
        return
    keys = [p.key for p in config.params(demo, base) if p.kind != "formula"]
    c1, c2, c3 = st.columns(3)
    key_x = c1.selectbox("first setting", keys, index=keys.index("lr"), key=widget_key(demo, "sweep:x"))
    others = ["(none)"] + [k for k in keys if k != key_x]
    default_y = config.compare(demo)[0] if config.compare(demo)[0] in others else "(none)"
    key_y = c2.selectbox("second setting", others, index=others.index(default_y), key=widget_key(demo, "sweep:y"))
    steps = c3.number_input("steps per run", 1, 5000, 100, step=50, key=widget_key(demo, "sweep:steps"))
    values_x = _axis_values(demo, key_x, "x", base)
    values_y = _axis_values(demo, key_y, "y", base) if key_y != "(none)" else None
    grids = [(key_x, values_x)] + ([(key_y, values_y)] if key_y != "(none)" else [])
    job = st.session_state.setdefault("sweeps", {}).get(demo)
    running = job is not None and job.running
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Sweep", disabled=running, key=widget_key(demo, "sweep:start")):
        if any(not v for _, v in grids):
            st.error("choose at least one value for every swept setting")
        else:
            try:
                job = sweeps.SweepJob(demo, grids, {k: v for k, v in base.items() if k not in dict(grids)},
                                      int(steps), seed)
                st.session_state["sweeps"][demo] = job
                running = True
            except config.SettingError as e:
                st.error(str(e))
    if b2.button("Stop sweep", disabled=not running, key=widget_key(demo, "sweep:stop")):
        job.stop()
    if job is None:
        return
    color_options = (["final_loss", "best_loss", f"metric:{config.main_metric(demo, base)}", "max_grad_norm"]
                     + sweeps.anatomy_columns(demo))  # mean cosine between terms, each term's gradient share
    color = st.selectbox("colour by", color_options, key=widget_key(demo, "sweep:color"))

    pace = page(demo).sweep_pace
    pace.asked = None

    @st.fragment(run_every=pace.interval if running else None)
    def live_map():
        draw = pacing.start(pace, running)
        rows = job.finished_rows()
        ahead = job.queue_position
        st.progress(len(rows) / max(len(job.points), 1), text=f"{len(rows)} of {len(job.points)} runs"
                    + (" (stopped)" if not job.running and len(rows) < len(job.points) else "")
                    + (f" (the next one queued, {ahead} ahead of it)" if ahead is not None else ""))
        if job.error:
            st.error(f"the sweep ended with an error: {job.error}")
        x_vals = [v for v in job.grids[0][1]]
        y_vals = job.grids[1][1] if len(job.grids) > 1 else None
        if draw:
            event = st.plotly_chart(charts.stability_map(rows, [k for k, _ in job.grids], x_vals, y_vals, color),
                                    key=widget_key(demo, "sweep:map"), on_select="rerun", selection_mode="points")
            picked = _picked_row(event, rows, job)
            if picked is not None:
                _load(demo, job, picked)
        pacing.done(pace, running)
        if running and not job.running:
            st.rerun()

    live_map()
    rows = job.finished_rows()
    if not rows or job.running:
        return
    st.dataframe(charts.display(rows), key=widget_key(demo, "sweep:table"))
    names = [", ".join(f"{k}={r[k]}" for k, _ in job.grids) + f" ({r['status']})" for r in rows]
    chosen = st.selectbox("configuration", range(len(rows)), format_func=names.__getitem__,
                          key=widget_key(demo, "sweep:pick"))
    if st.button("Load into the sidebar", key=widget_key(demo, "sweep:load")):
        _load(demo, job, rows[chosen])
    st.code(sweeps.cli_command(demo, job.grids, job.base, job.steps, job.seed), language="bash")
    st.download_button("Download the sweep as CSV", records.to_csv(rows), file_name=f"lossviz-sweep-{demo}.csv",
                       mime="text/csv", key=widget_key(demo, "sweep:download"))


def _picked_row(event, rows, job):
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return None
    x, y = str(points[0].get("x")), str(points[0].get("y", ""))
    for row in rows:
        if str(row[job.grids[0][0]]) == x and (len(job.grids) < 2 or str(row[job.grids[1][0]]) == y):
            return row
    return None


def _load(demo: str, job, row: dict[str, Any]) -> None:
    settings = config.resolve(demo, {**job.base, **{k: row[k] for k, _ in job.grids}})
    controls.load(demo, links.RunState(settings, job.seed, job.steps))
    st.rerun()
