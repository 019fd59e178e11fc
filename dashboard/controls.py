"""The sidebar: a slider and an exact-value box per numeric knob, choices, the compare run, validation, and
the page state in the URL query.

The text box holds the value in force (any text reaches validation, as on the CLI); the slider moves over a
grid of round values (log-spaced for lr, penalty, epsilon, c and clipping) and writes the box. Moving either
while a run exists sends the change to the run (``TrainingJob.set``), which applies it from its next chunk.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from lossviz import formula, links
from lossviz import settings as config

from .common import PAGE_NAMES, jobs

DECADES = {"lr": (-5, 0), "penalty": (-1, 3), "epsilon": (-9, 0), "c": (-6, 0), "clipnorm": (-3, 2),
           "clipvalue": (-3, 2)}
LINEAR = {"alpha": (0.0, 1.0, 0.01), "positive_rate": (0.005, 0.5, 0.005)}
OFF_AT_ZERO = ("clipnorm", "clipvalue")
FORMULA_HELP = ("Inputs: binary y, p, z (p = sigmoid(z)); regression y, yhat, r = yhat - y. Functions: "
                + ", ".join(formula.FUNCTIONS) + ". Any other name is a parameter (a knob); give defaults after "
                "';' as name=value. Nothing typed here is executed: it is parsed and compiled into keras.ops.")


def _grid(p: config.Param) -> list[float] | None:
    """The slider's values of a log-scale knob (None for a linear one). A formula's parameter gets 0 and its
    default times 0.01 ... 100 (log-spaced, with the default's sign)."""
    if p.kind == "int" and p.key == "batch_size":
        return [2 ** k for k in range(13) if p.check(2 ** k)]
    if p.kind == "int":  # an int knob of a loss (a depth, an order, an axis): the integers around its default
        d = int(p.default)
        return [v for v in range(min(0, d - 4), max(d * 2, d + 8) + 1) if p.check(v)]
    if p.key not in DECADES and p.key not in LINEAR:  # a formula's parameter
        d = float(p.default)
        scale = abs(d) or 1.0
        magnitudes = sorted({float(f"{scale * m * 10.0 ** e:.3g}") for e in range(-2, 2) for m in (1, 2, 5)}
                            | {float(f"{scale * 100:.3g}")})
        return [-v for v in reversed(magnitudes)] + [0.0] if d < 0 else [0.0] + magnitudes
    if p.key not in DECADES:
        return None
    low, high = DECADES[p.key]
    values = [float(f"{m}e{e}") for e in range(low, high + 1) for m in (1, 2, 5)]
    values = [v for v in values if v <= 10.0 ** high and p.check(v)]
    if p.check(-1.0):  # lr: negative values are gradient ascent, mirrored on the left
        return [-v for v in reversed(values)] + values
    return ([0.0] if p.check(0.0) else []) + values


def _nearest(p: config.Param, value: float):
    grid = _grid(p)
    if grid is None:
        low, high, step = LINEAR[p.key]
        return round(round(min(max(value, low), high) / step) * step, 6)
    if value == 0 or not math.isfinite(value):
        return min(grid, key=abs)
    if p.kind == "int" and p.key != "batch_size":  # a linear grid of integers
        return min(grid, key=lambda g: abs(g - value))
    same_sign = [g for g in grid if g != 0 and (g > 0) == (value > 0)] or grid
    return min(same_sign, key=lambda g: abs(math.log(abs(g)) - math.log(abs(value))) if g else math.inf)


def _label(v, p: config.Param) -> str:
    return "off" if v == 0 and p.key in OFF_AT_ZERO else f"{v:g}"


def _value_key(demo: str, key: str, prefix: str) -> str:
    """Where a setting's raw value lives (text for numbers): one place, written by either of its widgets. A knob
    of your own code named as one of the page's own controls (``smoothing``, ``steps``) lives apart from it."""
    if key in PAGE_NAMES:
        return f"{prefix}{demo}:knob:{key}"
    return f"{prefix}{demo}:{key}"


def _widget_key(value_key: str, which: str) -> str:
    """The key of the current instance of a knob's slider or box. Writing the value from one widget renews
    the other (a new key showing the new value); a stale value the browser still holds for the old instance,
    sent along with a fragment's redraw before the new one arrived, is then ignored by the callbacks."""
    return f"{value_key}:{which}:{st.session_state.get(f'{value_key}:{which}:v', 0)}"


def _renew(value_key: str, which: str) -> None:
    counter = f"{value_key}:{which}:v"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1


def put(demo: str, key: str, value, prefix: str = "", settings: dict[str, Any] | None = None) -> None:
    """Show ``value`` in a knob's widgets (before they are drawn in this run); ``settings`` for the keys of a
    formula's parameters."""
    p = config.param(demo, key, settings)
    where = _value_key(demo, key, prefix)
    if p.kind in ("choice", "formula"):
        st.session_state[where] = value
        return
    if p.kind == "alpha":
        st.session_state[where + ":mode"] = value if isinstance(value, str) else "number"
        if isinstance(value, str):
            return
    st.session_state[where] = config.format_value(value)
    _renew(where, "slider")
    _renew(where, "box")


def _slider_moved(demo: str, key: str, prefix: str, widget: str, p: config.Param) -> None:
    if widget != _widget_key(_value_key(demo, key, prefix), "slider"):
        return  # an old instance's value, echoed by the browser: the knob has moved on since
    value = st.session_state[widget]
    value = int(value) if p.kind == "int" else float(value) if _grid(p) is not None else round(float(value), 6)
    where = _value_key(demo, key, prefix)
    st.session_state[where] = config.format_value(value)
    _renew(where, "box")
    _send(demo, key, prefix)


def _box_typed(demo: str, key: str, prefix: str, widget: str, p: config.Param) -> None:
    where = _value_key(demo, key, prefix)
    if widget != _widget_key(where, "box"):
        return  # an old instance's value, echoed by the browser: the knob has moved on since
    st.session_state[where] = st.session_state[widget]
    _renew(where, "slider")
    _send(demo, key, prefix)


def _send(demo: str, key: str, prefix: str) -> None:
    """A knob moved: the runs of the page take it from their next chunk (run B mirrors A's knobs except the
    one it compares). A value that is not allowed, or cannot change mid-run, is left to the page to explain."""
    raw = st.session_state[_value_key(demo, key, prefix)]
    own_b = st.session_state.get(f"{demo}:compare_key") if st.session_state.get(f"{demo}:compare") else None
    for name, job in jobs(demo).items():
        if (prefix == "B:") != (name == "B" and key == own_b):
            continue
        try:
            job.set(**{key: raw})
        except config.SettingError:
            pass


def _slider_position(p: config.Param, raw: str, default) -> Any:
    try:
        return _nearest(p, float(p.parse(raw)))
    except (config.SettingError, TypeError, ValueError):
        return _nearest(p, float(default))


def knob(demo: str, p: config.Param, prefix: str = "", default: Any = None) -> Any:
    """The widgets of one setting; returns its raw value (text for numbers, so any input reaches validation)."""
    where = _value_key(demo, p.key, prefix)
    default = p.default if default is None else default
    if p.kind == "choice":
        st.session_state.setdefault(where, default)
        options = p.choices if st.session_state[where] in p.choices else (*p.choices, st.session_state[where])
        return st.selectbox(p.key, options, key=where, help=p.help or p.allowed)
    if p.kind == "formula":
        st.session_state.setdefault(where, default)
        return st.text_area("loss formula", key=where, height=110, help=p.help + ". " + FORMULA_HELP)
    if p.kind == "alpha":
        st.session_state.setdefault(where + ":mode", default if isinstance(default, str) else "number")
        mode = st.selectbox("alpha mode", ("number", *p.choices), key=where + ":mode", help=p.help)
        if mode != "number":
            return mode
        default = p.default if isinstance(default, str) else default
    if not isinstance(st.session_state.get(where), str):
        st.session_state[where] = config.format_value(default)
    raw = st.session_state[where]
    grid = _grid(p)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    slider, box = _widget_key(where, "slider"), _widget_key(where, "box")
    label = p.key + (" (log scale)" if grid is not None and p.kind != "int" else "")
    position = _slider_position(p, raw, p.default if isinstance(p.default, (int, float)) else 0.5)
    with left:
        if grid is None:
            low, high, step = LINEAR[p.key]
            st.slider(label, low, high, value=position, step=step, key=slider, on_change=_slider_moved,
                      args=(demo, p.key, prefix, slider, p), format="%g")
        else:
            st.select_slider(label, grid, value=position, key=slider, format_func=lambda v: _label(v, p),
                             on_change=_slider_moved, args=(demo, p.key, prefix, slider, p))
    with right:
        st.text_input(f"{p.key} value", value=raw, key=box, on_change=_box_typed, args=(demo, p.key, prefix, box, p),
                      label_visibility="collapsed", help=(p.help + "; " if p.help else "") + f"exact value: {p.allowed}")
    return raw


def sidebar(demo: str) -> dict[str, Any]:
    """Draw the controls; return the raw values, the run length, the seed and the comparison override."""
    _apply_pending(demo)
    params = config.params(demo) if demo != "custom" else config.PARAMS[demo]  # the formula's own: below
    with st.sidebar:
        st.header("Loss")
        if demo == "custom":
            _presets(demo)
        raw = {}
        for p in params:
            if p.key not in config.TRAINING_KEYS and p.when(raw):  # e.g. gradnorm_alpha only with alpha=gradnorm
                raw[p.key] = knob(demo, p)
        for p in _formula_params(demo, raw):
            raw[p.key] = knob(demo, p)
        st.header("Training")
        raw.update({p.key: knob(demo, p) for p in params if p.key in config.TRAINING_KEYS})
        st.session_state.setdefault(f"{demo}:steps", 300)
        steps = st.number_input("steps", min_value=0, max_value=links.MAX_STEPS, step=50, key=f"{demo}:steps",
                                help="the length of a run started with Train (Play has no end)")
        st.session_state.setdefault(f"{demo}:seed", 0)
        seed = st.number_input("seed", min_value=0, max_value=2**31 - 1, key=f"{demo}:seed")
        stop_nan = st.checkbox("stop at the first NaN/inf", value=False, key=f"{demo}:stop_nan")
        st.header("Compare")
        compare = st.checkbox("train a second run B", key=f"{demo}:compare",
                              help="same seed and data, one setting changed; B follows A's other knobs")
        other = None
        if compare:
            keys = list(raw)
            first, b_values = config.compare(demo)
            st.session_state.setdefault(f"{demo}:compare_key", first if first in keys else keys[0])
            key = st.selectbox("setting to change", keys, key=f"{demo}:compare_key")
            other = (key, knob(demo, config.param(demo, key, raw), "B:", b_values.get(key)))
    return {"raw": raw, "steps": int(steps), "seed": int(seed), "stop_nan": stop_nan, "other": other}


def _formula_params(demo: str, raw: dict[str, Any]) -> tuple[config.Param, ...]:
    """The knobs of the formula's parameters (none while the formula does not parse: the page says why)."""
    if demo != "custom":
        return ()
    try:
        found = config.params(demo, raw)[len(config.PARAMS[demo]):]
    except config.SettingError:
        return ()
    seen = st.session_state.setdefault(f"{demo}:formula_defaults", {})
    for p in found:  # a default changed in the formula's text: the knob takes it
        if seen.get(p.key) not in (None, p.default):
            put(demo, p.key, p.default, settings=raw)
        seen[p.key] = p.default
    return found


def _presets(demo: str) -> None:
    names = ["(keep my formula)", *formula.PRESETS]

    def chosen():
        name = st.session_state[f"{demo}:preset"]
        if name in formula.PRESETS:
            task, text = formula.PRESETS[name]
            st.session_state[f"{demo}:task"] = task
            st.session_state[f"{demo}:loss"] = text
            for key, value in formula.parse(text, task).parameters.items():
                put(demo, key, value, settings={"task": task, "loss": text})

    st.selectbox("preset", names, key=f"{demo}:preset", on_change=chosen,
                 help="a formula to start from; edit it below")


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
            raw_b = {**choice["raw"], key: value}
            if demo == "custom":  # B's formula may have other parameters: keep those it has
                allowed = set(config.keys(demo, raw_b))
                raw_b = {k: v for k, v in raw_b.items() if k in allowed}
            runs["B"] = config.resolve(demo, raw_b)
        except config.SettingError as e:
            errors.append(f"run B: {e}")
    return runs, errors


def label(demo: str, name: str, settings: dict[str, Any], base: dict[str, Any] | None = None) -> str:
    ref = base or config.defaults(demo)
    changed = [f"{k}={_short(config.format_value(v))}" for k, v in settings.items() if v != ref.get(k)]
    return f"{name}: " + (", ".join(changed[:3]) if changed else "defaults")


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def load(demo: str, state: links.RunState) -> None:
    """Put a run's state into the sidebar at the next rerun, with its schedule for the next runs."""
    st.session_state[f"{demo}:pending"] = state
    st.session_state[f"{demo}:schedule"] = {"A": list(state.schedule), "B": state.b_schedule()}


def _apply_pending(demo: str) -> None:
    """Put a loaded state (stability map cell, scenario, URL) into the widgets, before they are drawn."""
    state: links.RunState | None = st.session_state.pop(f"{demo}:pending", None)
    if state is None:
        return
    settings = config.resolve(demo, state.settings)
    for key, value in settings.items():
        put(demo, key, value, settings=settings)
    st.session_state[f"{demo}:steps"] = state.steps
    st.session_state[f"{demo}:seed"] = state.seed
    st.session_state[f"{demo}:compare"] = state.compare is not None
    if state.compare is not None:
        key, value = state.compare
        st.session_state[f"{demo}:compare_key"] = key
        put(demo, key, value, "B:", settings)


# ----------------------------------------------------------------------------- the URL query


def read_query(demo: str) -> None:
    """Once per session and page: load the state the address carries (a warning and the defaults when it is
    malformed)."""
    flag = f"{demo}:query_read"
    if st.session_state.get(flag):
        return
    st.session_state[flag] = True
    query = {key: st.query_params.get_all(key) for key in st.query_params}
    if not query:
        return
    try:
        state = links.from_query(demo, query)
    except config.SettingError as e:
        st.session_state[f"{demo}:query_warning"] = str(e)
        return
    load(demo, state)
    st.session_state[f"{demo}:query_loaded"] = True


def write_query(demo: str, state: links.RunState | None) -> None:
    """Keep the address in step with the page: copying it reproduces the run shown."""
    if state is None:
        return
    query = links.to_query(demo, state)
    if {key: st.query_params.get_all(key) for key in st.query_params} != query:
        st.query_params.from_dict(query)
