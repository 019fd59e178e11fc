"""Streamlit building blocks shared by ``app.py`` and the pages; the library ``lossviz`` stays UI-free.

A page calls :func:`demo_page` with its demo name and a function drawing its own view. Everything a
browser session trains lives in ``st.session_state`` (one per session): its training jobs run in
background threads, and a fragment redraws their charts a couple of times a second while they run.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

from lossviz import charts, records, surfaces, training
from lossviz import settings as config
from lossviz import sweep as sweeps

REDRAW_SECONDS = 0.5  # live charts redraw at most twice a second, whatever the step rate
TABLE_ROWS = 200

FAMILIES: dict[str, dict[str, str]] = {
    "policy-value": {
        "title": "Masked policy/value loss (AlphaGo Zero)",
        "page": "pages/1_Policy_value.py",
        "problem": "A two-headed network whose loss needs both heads, and a legal-move mask. A popular answer "
                   "builds the mask from `pi == 1`: whenever the search spreads its visits over several moves, "
                   "that mask is empty and the policy head learns nothing. Here p is a softmax over the legal "
                   "moves only.",
        "latex": r"l = (z - v)^2 - \pi^\top \log p + c\,\lVert\theta\rVert^2",
    },
    "two-branch": {
        "title": "Weighted two-branch loss",
        "page": "pages/2_Two_branch.py",
        "problem": "Two outputs of different shapes mixed by a weight alpha. Make alpha trainable and minimise "
                   "the loss over it, as suggested, and it runs to 0 or 1, switching a branch off; learned "
                   "uncertainty weighting (Kendall et al. 2018) does not.",
        "latex": r"L = \alpha L_1 + (1 - \alpha) L_2,\quad \alpha \in [0, 1]",
    },
    "sparse-penalty": {
        "title": "Sparse-penalty binary cross-entropy",
        "page": "pages/3_Sparse_penalty.py",
        "problem": "Events in 2% of the hours. Plain BCE learns 'always 0'; the hand-written penalised loss "
                   "gives NaN; clipping makes it finite but flat (no gradient); the suggested per-batch "
                   "`K.switch` does not weight the positives at all. From logits it is exact.",
        "latex": r"L = -\big(\text{penalty}\cdot y \log p + (1 - y)\log(1 - p)\big)",
    },
    "max-mse": {
        "title": "Maximised MSE",
        "page": "pages/4_Max_MSE.py",
        "problem": "A generator that must maximise an MSE. -MSE and a negative learning rate climb the same hill; "
                   "1/MSE only pushes the nearest points away and its gradient explodes near a zero residual.",
        "latex": r"-\tfrac{1}{n}\sum (\hat y - y)^2 \quad\text{or}\quad \tfrac{1}{n}\sum \frac{1}{(\hat y - y)^2 + \epsilon}",
    },
}


# ----------------------------------------------------------------------------- cached library calls


@st.cache_data(show_spinner=False, max_entries=64)
def analytic_figure(demo: str, settings_items: tuple):
    settings = dict(settings_items)
    return charts.curves_chart(surfaces.curves(demo, settings))


@st.cache_data(show_spinner=False, max_entries=16)
def surface_figure(demo: str, settings_items: tuple):
    found = surfaces.surface(demo, dict(settings_items))
    return charts.surface_chart(found) if found is not None else None


# ----------------------------------------------------------------------------- settings in the sidebar


def _widget(demo: str, p: config.Param, prefix: str, default: Any = None) -> Any:
    """One control for a setting; numbers are typed as text so any input (NaN, 1e-3) reaches validation.
    Defaults go through ``st.session_state`` only, so a configuration loaded from a stability map can
    replace them."""
    key = f"{prefix}{demo}:{p.key}"
    default = p.default if default is None else default
    label = p.key + (" (log scale)" if p.log_scale else "")
    if p.kind == "choice":
        st.session_state.setdefault(key, default)
        return st.selectbox(label, p.choices, key=key, help=p.help or p.allowed)
    if p.kind == "alpha":
        modes = ("number", *p.choices)
        st.session_state.setdefault(key + ":mode", default if isinstance(default, str) else "number")
        mode = st.selectbox("alpha", modes, key=key + ":mode", help=p.help)
        if mode != "number":
            return mode
        st.session_state.setdefault(key, _text(default if not isinstance(default, str) else p.default))
        return st.text_input("alpha value", key=key, help=p.allowed)
    st.session_state.setdefault(key, _text(default))
    return st.text_input(label, key=key, help=(p.help + "; " if p.help else "") + p.allowed)


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def sidebar(demo: str) -> dict[str, Any]:
    """Draw the controls; return the raw values, the run length, the seed and the comparison override."""
    _apply_pending(demo)
    params = config.PARAMS[demo]
    own = [p for p in params if p.key not in config.TRAINING_KEYS]
    training_params = [p for p in params if p.key in config.TRAINING_KEYS]
    with st.sidebar:
        st.header("Loss")
        raw = {p.key: _widget(demo, p, "") for p in own}
        st.header("Training")
        raw.update({p.key: _widget(demo, p, "") for p in training_params})
        st.session_state.setdefault(f"{demo}:steps", 300)
        steps = st.number_input("steps", min_value=0, max_value=20000, step=50, key=f"{demo}:steps")
        seed = st.number_input("seed", min_value=0, max_value=2**31 - 1, value=0, key=f"{demo}:seed")
        stop_nan = st.checkbox("stop at the first NaN/inf", value=False, key=f"{demo}:stop_nan")
        st.header("Compare")
        compare = st.checkbox("train a second run B", value=False, key=f"{demo}:compare",
                              help="same seed and data, one setting changed")
        other = None
        if compare:
            keys = [p.key for p in params]
            key = st.selectbox("setting to change", keys, index=keys.index(config.COMPARE_KEY[demo]),
                               key=f"{demo}:compare_key")
            other = (key, _widget(demo, config.param(demo, key), "B:", config.COMPARE_DEFAULT[demo].get(key)))
    return {"raw": raw, "steps": int(steps), "seed": int(seed), "stop_nan": stop_nan, "other": other}


def validate(demo: str, choice: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The settings of run A (and B) or the messages that say what is allowed."""
    errors = []
    runs: dict[str, dict[str, Any]] = {}
    if choice["steps"] < 1:
        errors.append("steps must be an integer >= 1")
    try:
        runs["A"] = config.resolve(demo, choice["raw"])
    except config.SettingError as e:
        errors.append(str(e))
    if choice["other"] and "A" in runs:
        key, value = choice["other"]
        try:
            runs["B"] = config.resolve(demo, {**choice["raw"], key: value})
        except config.SettingError as e:
            errors.append(f"run B: {e}")
    return runs, errors


def label(demo: str, name: str, settings: dict[str, Any], base: dict[str, Any] | None = None) -> str:
    ref = base or config.defaults(demo)
    changed = [f"{k}={_text(v)}" for k, v in settings.items() if v != ref.get(k)]
    return f"{name}: " + (", ".join(changed[:3]) if changed else "defaults")


# ----------------------------------------------------------------------------- the page


def _jobs() -> dict[str, Any]:
    return st.session_state.setdefault("jobs", {})


def start(demo: str, runs: dict[str, dict[str, Any]], steps: int, seed: int, stop_nan: bool) -> None:
    """Stop this session's previous jobs of the demo and start one job per run."""
    for job in _jobs().get(demo, {}).values():
        job.stop()
    jobs = {}
    for name, settings in runs.items():
        jobs[label(demo, name, settings, runs["A"] if name == "B" else None)] = training.TrainingJob(
            demo, settings, steps, seed=seed, stop_on_nonfinite=stop_nan)
    _jobs()[demo] = jobs
    st.session_state[f"{demo}:meta"] = {"runs": runs, "steps": steps, "seed": seed}


def demo_page(demo: str, extra_view: Callable[[Any], None] | None = None) -> None:
    """The whole page of one demo: settings, analytic curve, Train/Stop, live charts, NaN panel, views."""
    family = FAMILIES[demo]
    st.title(family["title"])
    st.markdown(family["problem"])
    st.latex(family["latex"])
    choice = sidebar(demo)
    runs, errors = validate(demo, choice)
    for message in errors:
        st.error(message)

    if "A" in runs:
        with st.expander("The loss over its input, for these settings", expanded=True):
            items = tuple(sorted(runs["A"].items()))
            st.plotly_chart(analytic_figure(demo, items), key="analytic")
            figure = surface_figure(demo, items)
            if figure is not None:
                st.plotly_chart(figure, key="surface")

    jobs = _jobs().get(demo, {})
    running = any(job.running for job in jobs.values())
    left, right, _ = st.columns([1, 1, 4])
    if left.button("Train", type="primary", disabled=bool(errors), key=f"{demo}:train"):
        start(demo, runs, choice["steps"], choice["seed"], choice["stop_nan"])
        jobs, running = _jobs()[demo], True
    if right.button("Stop", disabled=not running, key=f"{demo}:stop"):
        for job in jobs.values():
            job.stop()
    if not jobs:
        st.info("Set the loss and the training on the left, then press Train.")
    else:
        _live(demo, running)
        if not any(job.running for job in jobs.values()):
            _after(demo, jobs, extra_view)
    _stability_section(demo, runs.get("A"), choice["seed"])


def _live(demo: str, running: bool) -> None:
    @st.fragment(run_every=REDRAW_SECONDS if running else None)
    def live():
        jobs = _jobs().get(demo, {})
        meta = st.session_state.get(f"{demo}:meta", {})
        total = max(meta.get("steps", 1), 1)
        for name, job in jobs.items():
            done = len(job.records)
            st.progress(min(done / total, 1.0), text=f"{name}: {done} / {total} steps"
                        + (" (stopped)" if job.stopped_early else ""))
            if job.error:
                st.error(f"{name} ended with an error: {job.error}")
        data = {name: list(job.records) for name, job in jobs.items()}
        _nan_panel(demo, data, meta)
        log_y = st.session_state.get(f"{demo}:log_y", False)
        st.plotly_chart(charts.loss_chart(data, log_y=log_y), key="loss_chart")
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.grad_norm_chart(data), key="grad_chart")
        c2.plotly_chart(charts.metrics_chart(data), key="metrics_chart")
        for i, (name, recs) in enumerate(data.items()):
            st.plotly_chart(charts.layer_heatmap(recs, f"({name})"), key=f"heatmap_{i}")
        if running and not any(job.running for job in jobs.values()):
            st.rerun()  # the runs ended: redraw the whole page once, with the final views

    live()
    st.checkbox("log scale for the loss", key=f"{demo}:log_y")


def _nan_panel(demo: str, data: dict[str, list], meta: dict) -> None:
    settings_of = dict(zip(data, meta.get("runs", {}).values()))
    for name, recs in data.items():
        where = records.describe_first_nonfinite(recs)
        if where is None:
            continue
        bad = sum(1 for r in recs if r["nonfinite"] > 0)
        cause = records.likely_cause(demo, settings_of.get(name, {}), recs)
        st.error(f"**{name}** - first NaN/inf at {where}; {bad} of {len(recs)} steps non-finite.  \n"
                 f"Most likely cause: {cause}")


def _after(demo: str, jobs: dict[str, Any], extra_view) -> None:
    meta = st.session_state.get(f"{demo}:meta", {})
    if extra_view is not None:
        extra_view(jobs)
    _landscape_section(demo, jobs, meta)
    st.subheader("Runs")
    for (name, job), settings in zip(jobs.items(), meta.get("runs", {}).values()):
        recs = job.records
        if not recs:
            continue
        st.markdown(f"**{name}** - {len(recs)} steps, final loss {_fmt(recs[-1]['loss'])}")
        st.code(config.cli_command(demo, settings, len(recs), meta.get("seed", 0)), language="bash")
        st.download_button(f"Download {name.split(':')[0]} as CSV", records.to_csv(recs),
                           file_name=f"lossviz-{demo}-{name.split(':')[0]}.csv", mime="text/csv",
                           key=f"{demo}:download:{name}")
        st.dataframe(charts.frame(recs[-TABLE_ROWS:]), height=240, key=f"{demo}:table:{name}")


def _landscape_section(demo: str, jobs: dict[str, Any], meta: dict) -> None:
    """On demand, for a finished run: the random-plane landscape (contour and 3-D), the PCA plane with the
    training path, and the initial-to-final interpolation."""
    st.subheader("Landscape")
    c1, c2, c3 = st.columns(3)
    resolution = c1.slider("resolution (points per axis)", 11, 61, 31, step=2, key=f"{demo}:resolution")
    span = c2.select_slider("span of the random plane", [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0], 1.0,
                            key=f"{demo}:span")
    name = c3.selectbox("run", list(jobs), key=f"{demo}:landscape_run")
    log_scale = st.checkbox("log colour scale", key=f"{demo}:landscape_log")
    stored = st.session_state.get(f"{demo}:landscape")
    if st.button("Compute landscape", key=f"{demo}:landscape_button"):
        trainer = jobs[name].trainer
        bar = st.progress(0.0, text="random plane")
        result = {"job": id(jobs[name]), "run": name, "warning": None}
        result["random"] = surfaces.random_landscape(
            trainer, resolution, span, seed=meta.get("seed", 0),
            on_progress=lambda f: bar.progress(0.6 * f, text=f"random plane: {f:.0%}"))
        try:
            result["pca"] = surfaces.trajectory_landscape(
                trainer, resolution, on_progress=lambda f: bar.progress(0.6 + 0.35 * f, text=f"training path: {f:.0%}"))
        except ValueError as e:
            result["pca"], result["warning"] = None, str(e)
        result["interpolation"] = surfaces.interpolation(trainer)
        bar.progress(1.0, text=f"{resolution}x{resolution} grid, {len(trainer.snapshots)} weight snapshots")
        st.session_state[f"{demo}:landscape"] = stored = result
    if not stored or stored["job"] not in {id(job) for job in jobs.values()}:
        st.caption("Computes the loss around the trained weights of the chosen run, many grid points per call.")
        return
    st.caption(f"Run {stored['run']}.")
    left, right = st.columns(2)
    left.plotly_chart(charts.landscape_contour(stored["random"], log_scale), key=f"{demo}:land_contour")
    right.plotly_chart(charts.landscape_surface(stored["random"]), key=f"{demo}:land_surface")
    left, right = st.columns(2)
    if stored["pca"] is not None:
        left.plotly_chart(charts.landscape_contour(stored["pca"], log_scale), key=f"{demo}:land_pca")
    else:
        left.warning(stored["warning"])
    right.plotly_chart(charts.interpolation_chart(stored["interpolation"]), key=f"{demo}:land_interp")


def prediction_views(jobs: dict[str, Any], title: str, figure: Callable[[Any, dict], Any]) -> None:
    """One column per run: ``figure(trainer, outputs)`` of the model's outputs on the run's whole data."""
    st.subheader(title)
    for i, (column, (name, job)) in enumerate(zip(st.columns(len(jobs)), jobs.items())):
        column.markdown(f"**{name}**")
        column.plotly_chart(figure(job.trainer, job.trainer.predict()), key=f"prediction_view_{i}")


def _apply_pending(demo: str) -> None:
    """Put a configuration chosen on the stability map into the sidebar's widgets (before they are drawn)."""
    pending = st.session_state.pop(f"{demo}:pending", None)
    if not pending:
        return
    st.session_state[f"{demo}:steps"] = pending.pop("steps")
    for key, value in pending.items():
        p = config.param(demo, key)
        if p.kind == "alpha":
            st.session_state[f"{demo}:{key}:mode"] = value if isinstance(value, str) else "number"
            if not isinstance(value, str):
                st.session_state[f"{demo}:{key}"] = _text(value)
        elif p.kind == "choice":
            st.session_state[f"{demo}:{key}"] = value
        else:
            st.session_state[f"{demo}:{key}"] = _text(value)


def _axis_values(demo: str, key: str, slot: str) -> list[Any] | None:
    """Controls for the values of one swept setting: a choice list, or a numeric range (log-spaced for lr,
    penalty, epsilon, c). Returns the raw values, or None after showing what is wrong."""
    import numpy as np

    p = config.param(demo, key)
    if p.kind == "choice":
        return st.multiselect(f"{key} values", p.choices, default=list(p.choices), key=f"{demo}:sweep:{slot}:values")
    if p.kind == "alpha":
        text = st.text_input(f"{key} values (comma separated)", "0.1,0.5,0.9,trainable,uncertainty",
                             key=f"{demo}:sweep:{slot}:text")
        return [v.strip() for v in text.split(",") if v.strip()]
    low_default = p.default / 100 if p.log_scale and p.default > 0 else (p.default if p.default else 0.0)
    high_default = p.default * 10 if p.log_scale and p.default > 0 else (p.default * 4 if p.default else 1.0)
    a, b, c = st.columns(3)
    low = a.text_input(f"{key} from", _text(low_default), key=f"{demo}:sweep:{slot}:low")
    high = b.text_input(f"{key} to", _text(high_default), key=f"{demo}:sweep:{slot}:high")
    count = c.number_input(f"{key} points", 1, 12, 4, key=f"{demo}:sweep:{slot}:count")
    log = st.checkbox(f"log scale for {key}", value=p.log_scale, key=f"{demo}:sweep:{slot}:log")
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


def _stability_section(demo: str, base: dict[str, Any] | None, seed: int) -> None:
    """Sweep one or two settings, watch the cells fill in, load a cell into the sidebar."""
    st.subheader("Stability map")
    st.caption("Where does this loss train, stall or go NaN? Every cell is a run with the same seed and data, "
               "in worker processes on all cores.")
    if base is None:
        st.info("Fix the settings on the left first: the sweep starts from them.")
        return
    keys = list(config.keys(demo))
    c1, c2, c3 = st.columns(3)
    key_x = c1.selectbox("first setting", keys, index=keys.index("lr"), key=f"{demo}:sweep:x")
    others = ["(none)"] + [k for k in keys if k != key_x]
    default_y = config.COMPARE_KEY[demo] if config.COMPARE_KEY[demo] != key_x else "(none)"
    key_y = c2.selectbox("second setting", others, index=others.index(default_y), key=f"{demo}:sweep:y")
    steps = c3.number_input("steps per run", 1, 5000, 100, step=50, key=f"{demo}:sweep:steps")
    values_x = _axis_values(demo, key_x, "x")
    values_y = _axis_values(demo, key_y, "y") if key_y != "(none)" else None
    grids = [(key_x, values_x)] + ([(key_y, values_y)] if key_y != "(none)" else [])
    job = st.session_state.get(f"{demo}:sweep_job")
    running = job is not None and job.running
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Sweep", disabled=running, key=f"{demo}:sweep:start"):
        if any(not v for _, v in grids):
            st.error("choose at least one value for every swept setting")
        else:
            try:
                job = sweeps.SweepJob(demo, grids, {k: v for k, v in base.items() if k not in dict(grids)},
                                      int(steps), seed)
                st.session_state[f"{demo}:sweep_job"] = job
                running = True
            except config.SettingError as e:
                st.error(str(e))
    if b2.button("Stop sweep", disabled=not running, key=f"{demo}:sweep:stop"):
        job.stop()
    if job is None:
        return
    color_options = ["final_loss", "best_loss", f"metric:{config.MAIN_METRIC[demo]}", "max_grad_norm"]
    color = st.selectbox("colour by", color_options, key=f"{demo}:sweep:color")

    @st.fragment(run_every=REDRAW_SECONDS if running else None)
    def live_map():
        rows = job.finished_rows()
        st.progress(len(rows) / max(len(job.points), 1), text=f"{len(rows)} of {len(job.points)} runs"
                    + (" (stopped)" if not job.running and len(rows) < len(job.points) else ""))
        if job.error:
            st.error(f"the sweep ended with an error: {job.error}")
        x_vals = [v for v in job.grids[0][1]]
        y_vals = job.grids[1][1] if len(job.grids) > 1 else None
        event = st.plotly_chart(charts.stability_map(rows, [k for k, _ in job.grids], x_vals, y_vals, color),
                                key=f"{demo}:sweep:map", on_select="rerun", selection_mode="points")
        picked = _picked_row(event, rows, job)
        if picked is not None:
            _load(demo, job, picked)
        if running and not job.running:
            st.rerun()

    live_map()
    rows = job.finished_rows()
    if not rows or job.running:
        return
    st.dataframe(charts.frame(rows), key=f"{demo}:sweep:table")
    names = [", ".join(f"{k}={r[k]}" for k, _ in job.grids) + f" ({r['status']})" for r in rows]
    chosen = st.selectbox("configuration", range(len(rows)), format_func=names.__getitem__, key=f"{demo}:sweep:pick")
    if st.button("Load into the sidebar", key=f"{demo}:sweep:load"):
        _load(demo, job, rows[chosen])
    st.code(sweeps.cli_command(demo, job.grids, job.base, job.steps, job.seed), language="bash")
    st.download_button("Download the sweep as CSV", records.to_csv(rows), file_name=f"lossviz-sweep-{demo}.csv",
                       mime="text/csv", key=f"{demo}:sweep:download")


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
    st.session_state[f"{demo}:pending"] = {**settings, "steps": job.steps}
    st.rerun()


def _fmt(x: float) -> str:
    return f"{x:.5g}" if math.isfinite(x) else str(x)
