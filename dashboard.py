"""Streamlit building blocks shared by ``app.py`` and the pages; the library ``lossviz`` stays UI-free.

A page calls :func:`demo_page` with its demo name and a function drawing its own view. Everything a
browser session trains lives in ``st.session_state`` (one per session): its training jobs run in
background threads, and a fragment redraws their charts a couple of times a second while they run.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

from lossviz import settings as config

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


@st.cache_resource(show_spinner=False)
def _lib():
    """Import TensorFlow-backed modules once per server process."""
    from lossviz import charts, demos, records, surfaces, training

    return charts, demos, records, surfaces, training


@st.cache_data(show_spinner=False, max_entries=64)
def analytic_figure(demo: str, settings_items: tuple):
    charts, _, _, surfaces, _ = _lib()
    settings = dict(settings_items)
    return charts.curves_chart(surfaces.curves(demo, settings))


@st.cache_data(show_spinner=False, max_entries=16)
def two_branch_surface_figure(settings_items: tuple):
    charts, _, _, surfaces, _ = _lib()
    return charts.surface_chart(surfaces.two_branch_surface(dict(settings_items)))


# ----------------------------------------------------------------------------- settings in the sidebar


def _widget(demo: str, p: config.Param, prefix: str, default: Any = None) -> Any:
    """One control for a setting; numbers are typed as text so any input (NaN, 1e-3) reaches validation."""
    key = f"{prefix}{demo}:{p.key}"
    default = p.default if default is None else default
    label = p.key + (" (log scale)" if p.log_scale else "")
    if p.kind == "choice":
        return st.selectbox(label, p.choices, index=p.choices.index(default), key=key, help=p.help or p.allowed)
    if p.kind == "alpha":
        modes = ("number", *p.choices)
        mode = st.selectbox("alpha", modes, index=modes.index(default if isinstance(default, str) else "number"),
                            key=key + ":mode", help=p.help)
        if mode != "number":
            return mode
        value = default if not isinstance(default, str) else p.default
        return st.text_input("alpha value", str(value), key=key, help=p.allowed)
    return st.text_input(label, _text(default), key=key, help=(p.help + "; " if p.help else "") + p.allowed)


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def sidebar(demo: str) -> dict[str, Any]:
    """Draw the controls; return the raw values, the run length, the seed and the comparison override."""
    params = config.PARAMS[demo]
    own = [p for p in params if p.key not in config.TRAINING_KEYS]
    training = [p for p in params if p.key in config.TRAINING_KEYS]
    with st.sidebar:
        st.header("Loss")
        raw = {p.key: _widget(demo, p, "") for p in own}
        st.header("Training")
        raw.update({p.key: _widget(demo, p, "") for p in training})
        steps = st.number_input("steps", min_value=0, max_value=20000, value=300, step=50, key=f"{demo}:steps")
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
    _, _, _, _, training = _lib()
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
            st.plotly_chart(analytic_figure(demo, tuple(sorted(runs["A"].items()))), key="analytic")
            if demo == "two-branch":
                st.plotly_chart(two_branch_surface_figure(tuple(sorted(runs["A"].items()))), key="surface")

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
        return
    _live(demo, running)
    if not any(job.running for job in jobs.values()):
        _after(demo, jobs, extra_view)


def _live(demo: str, running: bool) -> None:
    @st.fragment(run_every=REDRAW_SECONDS if running else None)
    def live():
        charts, _, records, _, _ = _lib()
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
    _, _, records, _, _ = _lib()
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
    _, _, records, _, _ = _lib()
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
        st.dataframe(_lib()[0].frame(recs[-TABLE_ROWS:]), height=240, key=f"{demo}:table:{name}")


def _landscape_section(demo: str, jobs: dict[str, Any], meta: dict) -> None:
    """On demand, for a finished run: the random-plane landscape (contour and 3-D), the PCA plane with the
    training path, and the initial-to-final interpolation."""
    charts, _, _, surfaces, _ = _lib()
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


def _fmt(x: float) -> str:
    return f"{x:.5g}" if math.isfinite(x) else str(x)
