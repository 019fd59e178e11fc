"""The sidebar: a slider and an exact-value box per numeric knob, choices, the compare run, validation, and
the page state in the URL query.

The text box holds the value in force (any text reaches validation, as on the CLI); the slider moves over a
grid of round values (the knob's declared ``Slider``: log-spaced for lr, penalty, epsilon, c and clipping,
linear for alpha and the positive rate; a knob without one gets a grid around its default) and writes the box.
Moving either while a run exists sends the change to the run (``TrainingJob.set``), which applies it from its
next chunk.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from lossviz import formula, links
from lossviz import settings as config
from lossviz.knobs import TRAINING_KEYS

from .state import jobs, key as widget_key, knob_key, page

FORMULA_HELP = ("Inputs: binary y, p, z (p = sigmoid(z)); regression y, yhat, r = yhat - y. Functions: "
                + ", ".join(formula.FUNCTIONS) + ". Any other name is a parameter (a knob); give defaults after "
                "';' as name=value. Nothing typed here is executed: it is parsed and compiled into keras.ops.")


def _grid(p: config.Param) -> list[float] | None:
    """The slider's values (None for a linear slider): the knob's declared decades, powers of two for the batch
    size, the integers around an int knob's default, and for a knob without a slider 0 and its default times
    0.01 ... 100 (log-spaced, with the default's sign)."""
    if p.kind == "int" and p.key == "batch_size":  # and at the right end, the whole set (full)
        return [2 ** k for k in range(13) if p.check(2 ** k)] + [v for v in (p.words or {}) if p.check(v)]
    if p.kind == "int":  # an int knob of a loss (a depth, an order, an axis): the integers around its default
        d = int(p.default)
        return [v for v in range(min(0, d - 4), max(d * 2, d + 8) + 1) if p.check(v)]
    slider = p.slider
    if slider is None:
        d = float(p.default)
        scale = abs(d) or 1.0
        magnitudes = sorted({float(f"{scale * m * 10.0 ** e:.3g}") for e in range(-2, 2) for m in (1, 2, 5)}
                            | {float(f"{scale * 100:.3g}")})
        return [-v for v in reversed(magnitudes)] + [0.0] if d < 0 else [0.0] + magnitudes
    if slider.scale == "linear":
        return None
    low, high = int(slider.low), int(slider.high)
    values = [float(f"{m}e{e}") for e in range(low, high + 1) for m in (1, 2, 5)]
    values = [v for v in values if v <= 10.0 ** high and p.check(v)]
    if p.check(-1.0):  # lr: negative values are gradient ascent, mirrored on the left
        return [-v for v in reversed(values)] + values
    return ([0.0] if p.check(0.0) else []) + values


def _nearest(p: config.Param, value: float):
    grid = _grid(p)
    if grid is None:
        s = p.slider
        return round(round(min(max(value, s.low), s.high) / s.step) * s.step, 6)
    if value == 0 or not math.isfinite(value):
        return min(grid, key=abs)
    if p.kind == "int" and p.key != "batch_size":  # a linear grid of integers
        return min(grid, key=lambda g: abs(g - value))
    same_sign = [g for g in grid if g != 0 and (g > 0) == (value > 0)] or grid
    return min(same_sign, key=lambda g: abs(math.log(abs(g)) - math.log(abs(value))) if g else math.inf)


def _label(v, p: config.Param) -> str:
    if v in (p.words or {}):
        return p.words[v]
    return "off" if v == 0 and p.slider is not None and p.slider.off_at_zero else f"{v:g}"


def _text(p: config.Param, value) -> str:
    """A value as the box shows it: its word (batch_size full), or the number."""
    return (p.words or {}).get(value) or config.format_value(value)


def _value_key(demo: str, p: config.Param, prefix: str) -> str:
    """Where a setting's raw value lives (text for numbers): one place, written by either of its widgets."""
    return knob_key(demo, p.widget or p.key, prefix)


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
    where = _value_key(demo, p, prefix)
    if p.kind in ("choice", "formula"):
        st.session_state[where] = value
        return
    st.session_state[where] = _text(p, value)
    _renew(where, "slider")
    _renew(where, "box")


def _slider_moved(demo: str, prefix: str, widget: str, p: config.Param) -> None:
    where = _value_key(demo, p, prefix)
    if widget != _widget_key(where, "slider"):
        return  # an old instance's value, echoed by the browser: the knob has moved on since
    value = st.session_state[widget]
    value = int(value) if p.kind == "int" else float(value) if _grid(p) is not None else round(float(value), 6)
    st.session_state[where] = _text(p, value)
    _renew(where, "box")
    _send(demo, p, prefix)


def _box_typed(demo: str, prefix: str, widget: str, p: config.Param) -> None:
    where = _value_key(demo, p, prefix)
    if widget != _widget_key(where, "box"):
        return  # an old instance's value, echoed by the browser: the knob has moved on since
    st.session_state[where] = st.session_state[widget]
    _renew(where, "slider")
    _send(demo, p, prefix)


def _send(demo: str, p: config.Param, prefix: str) -> None:
    """A knob moved: the runs of the page take it from their next chunk (run B mirrors A's knobs except the
    one it compares). A value that is not allowed, or cannot change mid-run, is left to the page to explain."""
    raw = st.session_state[_value_key(demo, p, prefix)]
    own_b = st.session_state.get(widget_key(demo, "compare_key")) \
        if st.session_state.get(widget_key(demo, "compare")) else None
    for name, job in jobs(demo).items():
        if (prefix == "B:") != (name == "B" and p.key == own_b):
            continue
        try:
            job.set(**{p.key: raw})
        except config.SettingError:
            pass


def _slider_position(p: config.Param, raw: str, default) -> Any:
    try:
        return _nearest(p, float(p.parse(raw)))
    except (config.SettingError, TypeError, ValueError):
        return _nearest(p, float(default))


def knob(demo: str, p: config.Param, prefix: str = "", default: Any = None) -> Any:
    """The widgets of one setting; returns its raw value (text for numbers, so any input reaches validation)."""
    where = _value_key(demo, p, prefix)
    default = p.default if default is None else default
    if p.kind == "choice":
        st.session_state.setdefault(where, default)
        options = p.choices if st.session_state[where] in p.choices else (*p.choices, st.session_state[where])
        return st.selectbox((p.widget or p.key).replace(":", " "), options, key=where, help=p.help or p.allowed)
    if p.kind == "formula":
        st.session_state.setdefault(where, default)
        return st.text_area("loss formula", key=where, height=110, help=p.help + ". " + FORMULA_HELP)
    if not isinstance(st.session_state.get(where), str):
        st.session_state[where] = _text(p, default)
    raw = st.session_state[where]
    grid = _grid(p)
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    slider, box = _widget_key(where, "slider"), _widget_key(where, "box")
    label = p.key + (" (log scale)" if grid is not None and p.kind != "int" else "")
    position = _slider_position(p, raw, p.default if isinstance(p.default, (int, float)) else 0.5)
    with left:
        if grid is None:
            s = p.slider
            st.slider(label, s.low, s.high, value=position, step=s.step, key=slider, on_change=_slider_moved,
                      args=(demo, prefix, slider, p), format="%g")
        else:
            st.select_slider(label, grid, value=position, key=slider, format_func=lambda v: _label(v, p),
                             on_change=_slider_moved, args=(demo, prefix, slider, p))
    with right:
        st.text_input(f"{p.key} value", value=raw, key=box, on_change=_box_typed, args=(demo, prefix, box, p),
                      label_visibility="collapsed",
                      help=(p.help + "; " if p.help else "") + f"exact value: {p.allowed}")
    return raw


def sidebar(demo: str) -> dict[str, Any]:
    """Draw the controls; return the raw values, the run length, the seed and the comparison override."""
    _apply_pending(demo)
    spec = config.spec(demo)
    with st.sidebar:
        st.header("Loss")
        if spec.presets:
            _presets(demo)
        raw: dict[str, Any] = {}
        for p in config.params(demo):  # the keys the others depend on (a formula's task and text) first
            if p.key in spec.first_keys:
                raw[p.key] = knob(demo, p)
        params = _params(demo, raw)
        for p in params:
            if p.key not in TRAINING_KEYS and p.key not in raw and p.when(raw):  # gradnorm_alpha with gradnorm
                raw[p.key] = knob(demo, p)
        st.header("Training")
        raw.update({p.key: knob(demo, p) for p in params if p.key in TRAINING_KEYS})
        st.session_state.setdefault(widget_key(demo, "steps"), 300)
        steps = st.number_input("steps", min_value=0, max_value=links.MAX_STEPS, step=50, key=widget_key(demo, "steps"),
                                help="the length of a run started with Train (Play has no end)")
        st.session_state.setdefault(widget_key(demo, "seed"), 0)
        seed = st.number_input("seed", min_value=0, max_value=2**31 - 1, key=widget_key(demo, "seed"))
        stop_nan = st.checkbox("stop at the first NaN/inf", value=False, key=widget_key(demo, "stop_nan"))
        st.header("Compare")
        compare = st.checkbox("train a second run B", key=widget_key(demo, "compare"),
                              help="same seed and data, one setting changed; B follows A's other knobs")
        other = None
        if compare:
            keys = list(raw)
            first, b_values = config.compare(demo)
            st.session_state.setdefault(widget_key(demo, "compare_key"), first if first in keys else keys[0])
            key = st.selectbox("setting to change", keys, key=widget_key(demo, "compare_key"))
            other = (key, knob(demo, config.param(demo, key, raw), "B:", b_values.get(key)))
    return {"raw": raw, "steps": int(steps), "seed": int(seed), "stop_nan": stop_nan, "other": other}


def _params(demo: str, raw: dict[str, Any]) -> tuple[config.Param, ...]:
    """The demo's knobs for the values on the left (a formula's parameters with it; while the formula does not
    parse, the page says why and draws the training knobs only). A default that changed (a formula's text now
    gives a parameter another one) is put into its knob."""
    try:
        found = config.params(demo, raw)
    except config.SettingError:
        return tuple(p for p in config.params(demo) if p.key in TRAINING_KEYS)
    seen = page(demo).formula_defaults
    for p in found:
        if p.key in raw:
            continue
        if seen.get(p.key) not in (None, p.default):
            put(demo, p.key, p.default, settings=raw)
        seen[p.key] = p.default
    return found


def _presets(demo: str) -> None:
    presets = config.spec(demo).presets
    names = ["(keep my formula)", *presets]
    where = widget_key(demo, "preset")

    def chosen():
        name = st.session_state[where]
        if name in presets:
            task, text = presets[name]
            settings = {"task": task, "loss": text}
            for key, value in config.defaults(demo, settings).items():
                if key not in TRAINING_KEYS:
                    put(demo, key, settings.get(key, value), settings=settings)

    st.selectbox("preset", names, key=where, on_change=chosen, help="a formula to start from; edit it below")


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
            allowed = set(config.keys(demo, raw_b))  # B's formula may have other parameters: keep those it has
            runs["B"] = config.resolve(demo, {k: v for k, v in raw_b.items() if k in allowed})
        except config.SettingError as e:
            errors.append(f"run B: {e}")
    return runs, errors


def label(demo: str, name: str, settings: dict[str, Any], base: dict[str, Any] | None = None) -> str:
    ref = dict(config.written(demo, base or config.resolve(demo)))
    changed = [f"{k}={_short(config.format_value(v))}" for k, v in config.written(demo, settings) if ref.get(k) != v]
    return f"{name}: " + (", ".join(changed[:3]) if changed else "defaults")


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def load(demo: str, state: links.RunState) -> None:
    """Put a run's state into the sidebar before it is next drawn, with its schedule for the next runs."""
    here = page(demo)
    here.pending = state
    here.schedule = {"A": list(state.schedule), "B": state.b_schedule()}


def _apply_pending(demo: str) -> None:
    """Put a loaded state (stability map cell, scenario, URL) into the widgets, before they are drawn."""
    here = page(demo)
    state, here.pending = here.pending, None
    if state is None:
        return
    settings = config.resolve(demo, state.settings)
    for p in config.params(demo, settings):
        if p.key in settings:
            put(demo, p.key, settings[p.key], settings=settings)
    st.session_state[widget_key(demo, "steps")] = state.steps
    st.session_state[widget_key(demo, "seed")] = state.seed
    st.session_state[widget_key(demo, "compare")] = state.compare is not None
    if state.compare is not None:
        key, value = state.compare
        st.session_state[widget_key(demo, "compare_key")] = key
        put(demo, key, value, "B:", settings)


# ----------------------------------------------------------------------------- the URL query


def read_query(demo: str) -> None:
    """Once per session and page: load the state the address carries (a warning and the defaults when it is
    malformed)."""
    here = page(demo)
    if here.query_read:
        return
    here.query_read = True
    query = {key: st.query_params.get_all(key) for key in st.query_params}
    if not query:
        return
    try:
        state = links.from_query(demo, query)
    except config.SettingError as e:
        here.query_warning = str(e)
        return
    load(demo, state)
    here.query_loaded = True


def write_query(demo: str, state: links.RunState | None) -> None:
    """Keep the address in step with the page: copying it reproduces the run shown."""
    if state is None:
        return
    query = links.to_query(demo, state)
    if {key: st.query_params.get_all(key) for key in st.query_params} != query:
        st.query_params.from_dict(query)
