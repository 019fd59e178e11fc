"""Plotly figure builders. Each takes the trainer's records (lists of dicts) or a surfaces object.

``runs`` is a mapping from a run's label (e.g. "A: variant=naive") to its records, so every chart can
overlay a comparison. Non-finite values are never dropped silently: they are marked.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import curvature, gradients
from .records import MARKED_CHANGES, frame, knob_changes
from .curves import Curve, Surface

Records = Sequence[dict[str, Any]]
Runs = Mapping[str, Records]
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
RUN_DASHES = ("solid", "dot", "dash", "dashdot")  # runs A, B, ... (a projector tells dashes apart, not shades)
TERM_COLORS = ("#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2")  # none of the first two runs'

# Points per line of a live chart: about one per pixel of a full-width chart (half of it for a half-width one).
# More cannot be seen, and every point is sent to the browser at every redraw.
POINTS = 800
HALF = POINTS // 2
# plotly's default template is ~6.6 KB of JSON in every figure; Streamlit's theme styles the charts in the browser
LEAN = go.layout.Template(layout=dict(colorway=COLORS))


def _layout(fig: go.Figure, title: str, height: int = 360, subtitle: str | None = None) -> go.Figure:
    """Title (short: it fits a half-width chart at 1280 px), details in a subtitle, common margins."""
    fig.update_layout(**_frame(title, height, subtitle))
    return fig


def _frame(title: str, height: int = 360, subtitle: str | None = None) -> dict[str, Any]:
    return dict(title=dict(text=title, subtitle=dict(text=subtitle)) if subtitle else dict(text=title), height=height,
                margin=dict(l=50, r=20, t=70 if subtitle else 50, b=40), template=LEAN,
                legend=dict(orientation="h", y=-0.2), hovermode="x unified")


def _figure(traces: list, title: str, height: int = 360, subtitle: str | None = None, shapes=(), notes=(),
            **layout) -> go.Figure:
    """A figure built in one call (plotly validates at every ``add_trace`` and ``update_layout``: too slow for
    charts redrawn twice a second)."""
    return go.Figure(data=traces, layout={**_frame(title, height, subtitle), "shapes": list(shapes),
                                          "annotations": list(notes), **layout})


def thin(x, y, points: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A line's points as compact arrays (int32 steps, float32 values), at most ``points`` of them: MinMaxLTTB
    (Van Der Donckt et al. 2022, via tsdownsample) keeps every spike and every NaN gap the eye would see at one
    point per pixel. ``points=None`` keeps all."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    x = x.astype(np.int32) if x.dtype.kind in "iu" and (not len(x) or abs(x).max() < 2**31) else x.astype(np.float64)
    if points is not None and len(x) > points:
        from tsdownsample import NaNMinMaxLTTBDownsampler

        keep = NaNMinMaxLTTBDownsampler().downsample(np.ascontiguousarray(x), np.ascontiguousarray(y),
                                                     n_out=max(points, 4))
        x, y = x[keep], y[keep]
    return x, y.astype(np.float32)


def _line(x, y, points: int | None, **style) -> dict:
    """A line of a live chart: non-finite values as gaps (they are marked apart), thinned to ``points``."""
    x, y = thin(x, _finite(y), points)
    return dict(type="scatter", x=x, y=y, **{"mode": "lines", **style})


def smooth(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: the debiased exponential moving average of the finite values (each the mean of
    the values so far weighted by ``weight`` to the power of their age); non-finite values stay where they are
    and never enter the average; a constant series stays as it is. ``weight`` in [0, 1): 0 is no smoothing."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    if weight <= 0 or not finite.any() or np.all(v[finite] == v[finite][0]):
        return v.copy()
    out = v.copy()
    out[finite] = pd.Series(v[finite]).ewm(alpha=1.0 - weight, adjust=True).mean().to_numpy()
    return out


def _lines(x, y, points: int | None, smoothing: float, **style) -> list[dict]:
    """A line, or with ``smoothing`` its smoothed values over the raw ones drawn faint behind."""
    if smoothing <= 0:
        return [_line(x, y, points, **style)]
    raw = _line(x, y, points, **{**style, "opacity": 0.25, "showlegend": False, "hoverinfo": "skip"})
    return [raw, _line(x, smooth(y, smoothing), points, **style)]


def _marks(rows: np.ndarray, points: int | None) -> np.ndarray:
    """At most ``points`` of a set of marked rows, evenly spaced, the first and the last always kept."""
    if points is None or len(rows) <= points:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, points).round().astype(int))]


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


def _each_run(runs: Runs):
    """(label, table, colour) of every run that has records, in order."""
    for i, (label, records) in enumerate(runs.items()):
        df = frame(records)
        if not df.empty:
            yield label, df, COLORS[i % len(COLORS)]


def _nonfinite_marks(df: pd.DataFrame, y_col: str, color: str, name: str, points: int | None = HALF) -> list[dict]:
    """Red crosses at the steps with a non-finite value (at most ``points`` of them, the first always), drawn at
    the last finite height of ``y_col``; no trace for a finite run."""
    rows = _marks(np.flatnonzero(df["nonfinite"].to_numpy() > 0), points)
    if not len(rows):
        return []
    height = pd.Series(_finite(df[y_col])).ffill().bfill().fillna(0.0).to_numpy()
    bad = df.iloc[rows]
    text = [f"step {s}: {n} non-finite, first in {p or '?'}" for s, n, p in
            zip(bad["step"], bad["nonfinite"], bad["first_nonfinite"])]
    x, y = thin(bad["step"], height[rows], None)
    return [dict(type="scatter", x=x, y=y, mode="markers", name=f"{name} non-finite",
                 marker=dict(symbol="x", size=9, color="red", line=dict(color=color, width=1)),
                 text=text, hoverinfo="text")]


def _vline(x: float, xref: str = "x", text: str = "", **line) -> tuple[dict, dict]:
    """A vertical line across the plot and its label at the top (a shape and an annotation)."""
    return (dict(type="line", xref=xref, yref="paper", x0=x, x1=x, y0=0, y1=1,
                 line=line or dict(color="grey", dash="dash", width=1)),
            dict(xref=xref, yref="paper", x=x, y=1, text=text, showarrow=False, xanchor="left", yanchor="bottom",
                 font=dict(size=10, color=(line or {}).get("color", "grey"))))


def change_markers(runs: Runs, xrefs: Sequence[str] = ("x",)) -> tuple[list[dict], list[dict]]:
    """Shapes and annotations: a dashed vertical line at every step where a run's knobs changed, labelled e.g.
    ``penalty 10 -> 50`` (prefixed by the run's name when several runs are drawn), on each x axis of ``xrefs``."""
    shapes, notes = [], []
    for label, records in runs.items():
        by_step: dict[int, list[str]] = {}
        for step, key, old, new in knob_changes(records)[-MARKED_CHANGES:]:
            by_step.setdefault(step, []).append(f"{key} {old:g} -> {new:g}")
        prefix = f"{label.split(':')[0]}: " if len(runs) > 1 else ""
        for step, words in by_step.items():
            for xref in xrefs:
                shape, note = _vline(step, xref, prefix + ", ".join(words))
                shapes.append(shape)
                notes.append(note)
    return shapes, notes


def loss_chart(runs: Runs, log_y: bool = False, points: int | None = POINTS, smoothing: float = 0.0) -> go.Figure:
    """Total loss (solid) and each loss term (dashed) over steps, non-finite steps marked; ``smoothing``: see
    :func:`smooth`."""
    traces = []
    shapes, notes = change_markers(runs)
    for i, (label, df, color) in enumerate(_each_run(runs)):
        dash = RUN_DASHES[i % len(RUN_DASHES)]  # a run by its dash (and its total's colour), a term by its colour
        traces += _lines(df["step"], df["loss"], points, smoothing, name=f"{label} loss",
                         line=dict(color=color, width=2.5, dash=dash))
        terms = [c for c in df.columns if c.startswith("loss:")]
        for j, term in enumerate(terms):
            traces += _lines(df["step"], df[term], points, smoothing, name=f"{label} {term[5:]}",
                             line=dict(color=TERM_COLORS[j % len(TERM_COLORS)], width=1.5, dash=dash))
        traces += _nonfinite_marks(df, "loss", color, label)
        first = df[df["nonfinite"] > 0]
        if not first.empty:
            shape, note = _vline(int(first["step"].iloc[0]), text=f"first NaN/inf ({label})", color="red", dash="dot")
            shapes.append(shape)
            notes.append(note)
    return _figure(traces, "Loss and its terms", shapes=shapes, notes=notes, xaxis=dict(title="step"),
                   yaxis=dict(type="log") if log_y else {})


def grad_norm_chart(runs: Runs, points: int | None = HALF, smoothing: float = 0.0, column: str = "grad_norm",
                    title: str = "Gradient norm") -> go.Figure:
    """Global gradient norm (before clipping) over steps, log scale (``column``: another global norm, e.g. a
    callback run's ``update_norm``)."""
    traces = []
    for label, df, color in _each_run(runs):
        traces += _lines(df["step"], df[column], points, smoothing, name=label, line=dict(color=color))
        traces += _nonfinite_marks(df, column, color, label)
    shapes, notes = change_markers(runs)
    return _figure(traces, title, shapes=shapes, notes=notes, xaxis=dict(title="step"),
                   yaxis=dict(type="log", title=title.lower()))


def curvature_chart(runs: Runs, points: int | None = HALF) -> go.Figure:
    """The sharpness (solid, at the probe's steps) and the preconditioned sharpness (dotted) of every run that
    measures it, with its optimizer's stability limit (dashed, every step: it follows lr), log scale; knob changes
    marked as on the other charts."""
    traces = []
    for label, df, color in _each_run(runs):
        if "sharpness" not in df or "stability_limit" not in df:
            continue
        at = df[gradients.measured_steps(df["step"].to_numpy(), curvature.period(df))]
        traces.append(_line(at["step"], at["sharpness"], points, name=f"{label} sharpness", mode="lines+markers",
                            line=dict(color=color, width=2), marker=dict(size=3)))
        if "sharpness:preconditioned" in df:
            traces.append(_line(at["step"], at["sharpness:preconditioned"], points, name=f"{label} preconditioned",
                                line=dict(color=color, width=2, dash="dot")))
        traces.append(_line(df["step"], df["stability_limit"], points, name=f"{label} stability limit",
                            line=dict(color=color, width=1, dash="dash", shape="hv")))
    shapes, notes = change_markers(runs)
    return _figure(traces, "Curvature", subtitle="sharpness (largest Hessian eigenvalue) against the stability limit",
                   shapes=shapes, notes=notes, xaxis=dict(title="step"), yaxis=dict(type="log", title="eigenvalue"))


def _spikiest_columns(values: np.ndarray, points: int | None) -> np.ndarray:
    """At most ``points`` columns of a (rows x steps) matrix: in each of ``points`` equal buckets of steps, the
    column holding the bucket's largest value (a spike stays visible), or its first non-finite one."""
    n = values.shape[1]
    if points is None or n <= points:
        return np.arange(n)
    score = np.where(np.isfinite(values), values, np.inf).max(axis=0) if len(values) else np.zeros(n)
    score = np.where(np.isnan(score), -np.inf, score)
    edges = np.linspace(0, n, points + 1).round().astype(int)
    return np.array([a + int(np.argmax(score[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a])


def layer_heatmap(records: Records, label: str = "", points: int | None = POINTS, prefix: str = "grad_norm",
                  title: str = "Gradient norm per layer") -> go.Figure:
    """Per-layer gradient norms (the ``<prefix>:<layer>`` columns), layers x steps, coloured by log10(norm);
    non-finite cells marked. Past ``points`` steps, each column is the largest of its stretch of steps."""
    df = frame(records)
    layers = [c for c in df.columns if c.startswith(f"{prefix}:")]
    values = df[layers].to_numpy(dtype=float).T if layers else np.zeros((0, 0))
    keep = _spikiest_columns(values, points) if values.size else np.zeros(0, int)
    values = values[:, keep] if values.size else values
    steps = df["step"].to_numpy()[keep] if len(df) else np.zeros(0, int)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(values) & (values > 0), np.log10(np.where(values > 0, values, 1.0)), np.nan)
    names = [c[len(prefix) + 1:] for c in layers]
    x, _ = thin(steps, np.zeros(len(steps)), None)
    traces = [dict(type="heatmap", z=logs.astype(np.float32), x=x, y=names, colorscale="Viridis",
                   colorbar=dict(title="log10 norm"), hoverongaps=False,
                   hovertemplate="step %{x}<br>%{y}<br>log10 norm %{z:.2f}<extra></extra>")]
    bad_layer, bad_step = np.nonzero(~np.isfinite(values)) if values.size else ([], [])
    shown = _marks(np.arange(len(bad_layer)), points)
    if len(shown):
        traces.append(dict(type="scatter", x=x[np.asarray(bad_step)[shown]],
                           y=[names[i] for i in np.asarray(bad_layer)[shown]], mode="markers",
                           marker=dict(symbol="x", color="red", size=6), name="non-finite"))
    shapes, notes = change_markers({label: records})
    return _figure(traces, f"{title} {label}".strip(), height=120 + 28 * max(len(names), 3),
                   shapes=shapes, notes=notes, xaxis=dict(title="step"))


def _probed(runs: Runs, every: int):
    """(label, measured rows, dash) of every run with the per-term gradient probe."""
    for i, (label, records) in enumerate(runs.items()):
        df = frame(records)
        if df.empty or not gradients.probe_terms(df.columns):
            continue
        yield label, df[gradients.measured_steps(df["step"], every)], RUN_DASHES[i % len(RUN_DASHES)]



def term_grad_chart(runs: Runs, every: int = 1, points: int | None = HALF) -> go.Figure:
    """Each term's own gradient norm over the measured steps, log scale: one colour per term, one dash per run."""
    traces = []
    for label, df, dash in _probed(runs, every):
        for j, term in enumerate(gradients.probe_terms(df.columns)):
            values = np.asarray(df[f"grad_norm@{term}"], dtype=float)
            traces.append(_line(df["step"], np.where(values > 0, values, np.nan), points, name=f"{label} {term}",
                                line=dict(color=COLORS[j % len(COLORS)], dash=dash)))
            bad = _marks(np.flatnonzero(~np.isfinite(values)), points)
            if len(bad):
                x, y = thin(df["step"].to_numpy()[bad], np.ones(len(bad)), None)
                traces.append(dict(type="scatter", x=x, y=y, mode="markers", name=f"{label} {term} non-finite",
                                   text=[_word(v) for v in values[bad]], marker=dict(symbol="x", color="red", size=9),
                                   hoverinfo="text+x"))
    shapes, notes = change_markers(runs)
    return _figure(traces, "Gradient norm per term", shapes=shapes, notes=notes, xaxis=dict(title="step"),
                   yaxis=dict(type="log", title="gradient norm of the term"))


def term_cosine_chart(runs: Runs, every: int = 1, points: int | None = HALF) -> go.Figure:
    """The cosine between each pair of terms' gradients over the measured steps, the zero line, and the area
    between the curve and zero shaded where they conflict (cosine < 0), in the pair's colour."""
    traces = []
    for label, df, dash in _probed(runs, every):
        for j, (a, b) in enumerate(gradients.pairs(gradients.probe_terms(df.columns))):
            color = COLORS[(j + 3) % len(COLORS)]
            x, cos = thin(df["step"], gradients.pair_cosine(df, a, b), points)  # gaps: a term has no gradient
            name = f"{label} {a} vs {b}"
            traces.append(dict(type="scatter", x=x, y=np.minimum(cos, 0.0), fill="tozeroy", mode="none",
                               fillcolor=_translucent(color), name=f"{name} conflicts", legendgroup=name,
                               showlegend=False, hoverinfo="skip"))
            traces.append(dict(type="scatter", x=x, y=cos, name=name, legendgroup=name, connectgaps=False,
                               line=dict(color=color, dash=dash)))
    shapes, notes = change_markers(runs)
    zero = dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=0, y1=0, line=dict(color="black", width=1))
    return _figure(traces, "Cosine between terms", subtitle="shaded: the terms conflict (cosine < 0); gaps: a term "
                   "has no gradient", shapes=[zero] + shapes, notes=notes, xaxis=dict(title="step"),
                   yaxis=dict(range=[-1.05, 1.05], title="cosine"))


def _translucent(color: str, alpha: float = 0.25) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def term_share_heatmap(record: Mapping[str, Any], label: str = "") -> go.Figure:
    """Layers x terms at one step: each term's share of the layer's gradient (per-term norms), in percent."""
    terms = gradients.probe_terms(list(record))
    layers = gradients.probe_layers(list(record), terms[0]) if terms else []
    share = gradients.shares(record, terms, layers) if terms else np.zeros((0, 0))
    text = [[("n/a" if not np.isfinite(v) else f"{v:.0%}") for v in row] for row in share]
    fig = go.Figure(go.Heatmap(z=share, x=terms, y=layers, zmin=0, zmax=1, colorscale="Blues", text=text,
                               texttemplate="%{text}", colorbar=dict(title="share"), hoverongaps=False,
                               hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(hovermode="closest")
    step = record.get("step", "")
    return _layout(fig, f"Share of each layer's gradient {label}".strip(), subtitle=f"step {step}",
                   height=150 + 26 * max(len(layers), 3))


def _steps_only(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant series (drawn as steps) by its changes: the first row, every row whose value
    differs from the one before, and the last row; the same drawing from fewer points."""
    if len(y) < 3:
        return x, y
    same = (y[1:] == y[:-1]) | (np.isnan(y[1:]) & np.isnan(y[:-1]))
    keep = np.ones(len(y), bool)
    keep[1:-1] = ~same[:-1]
    return x[keep], y[keep]


def metrics_chart(runs: Runs, points: int | None = HALF, smoothing: float = 0.0) -> go.Figure:
    """One panel per metric (and alpha where the demo has one), every run overlaid. Metrics measured every
    few steps are carried in between: each line keeps its changes only, then at most ``points`` points."""
    first = next((frame(r) for r in runs.values() if len(r)), pd.DataFrame())
    names = [c for c in first.columns if c.startswith("metric:") or c == "alpha"]
    axes = [f"{j + 1}" if j else "" for j in range(max(len(names), 1))]
    traces = []
    for label, df, color in _each_run(runs):
        for j, name in enumerate(names):
            if name in df:
                x, y = df["step"].to_numpy(), _finite(df[name])
                if smoothing <= 0:  # a smoothed line is no longer piecewise constant
                    x, y = _steps_only(x, y)
                traces += _lines(x, y, points, smoothing, name=label, legendgroup=label, showlegend=j == 0,
                                 line=dict(color=color, shape="hv"), xaxis=f"x{axes[j]}", yaxis=f"y{axes[j]}")
    shapes, notes = change_markers(runs, xrefs=[f"x{a}" for a in axes]) if names else ([], [])
    return _figure(traces, "Metrics", height=320, shapes=shapes, notes=notes + _panel_titles(names, axes),
                   **_side_by_side(axes))


def _side_by_side(axes: Sequence[str], gap: float = 0.08) -> dict[str, dict]:
    """Layout of one row of panels sharing nothing (what ``make_subplots(rows=1, cols=n)`` builds, without its cost)."""
    width = (1.0 - gap * (len(axes) - 1)) / len(axes)
    layout = {}
    for j, a in enumerate(axes):
        start = j * (width + gap)
        layout[f"xaxis{a}"] = dict(domain=[start, start + width], anchor=f"y{a}", title="step")
        layout[f"yaxis{a}"] = dict(anchor=f"x{a}")
    return layout


def _panel_titles(names: Sequence[str], axes: Sequence[str]) -> list[dict]:
    """A title above each panel of ``_side_by_side``."""
    return [dict(text=n.replace("metric:", ""), xref=f"x{a} domain", yref="paper", x=0.5, y=1.0, showarrow=False,
                 xanchor="center", yanchor="bottom", font=dict(size=14)) for n, a in zip(names, axes)]


def curves_chart(curves: Sequence[Curve], title: str = "The loss over its input") -> go.Figure:
    """Each curve (top) and its derivative (bottom), one column per input; non-finite points marked."""
    inputs = list(dict.fromkeys(c.x_label for c in curves))
    fig = make_subplots(rows=2, cols=len(inputs), shared_xaxes=True, row_titles=["loss", "derivative"],
                        vertical_spacing=0.08)
    for i, c in enumerate(curves):
        col = inputs.index(c.x_label) + 1
        for row, values in ((1, c.y), (2, c.dy)):
            finite = _finite(values)
            fig.add_trace(go.Scatter(x=c.x, y=finite, name=c.name, legendgroup=c.name, showlegend=row == 1,
                                     line=dict(color=COLORS[i % len(COLORS)])), row=row, col=col)
            bad = ~np.isfinite(values)
            if bad.any():  # drawn at the edge of the finite range, on the side of their sign
                edge = np.nanmax(np.abs(finite)) if np.isfinite(finite).any() else 1.0
                signs = np.where(np.isnan(values[bad]), 1.0, np.sign(values[bad]))
                fig.add_trace(go.Scatter(x=c.x[bad], y=signs * edge, mode="markers", showlegend=False,
                                         marker=dict(symbol="x", color="red", size=10),
                                         text=[_word(v) for v in values[bad]], hoverinfo="text+x"), row=row, col=col)
        fig.update_xaxes(title=c.x_label, row=2, col=col)
    fig.update_layout(hovermode="closest")
    return _layout(fig, title, height=480)


def _word(v: float) -> str:
    return "NaN" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


def surface_chart(surface: Surface) -> go.Figure:
    fig = go.Figure(go.Contour(z=surface.z, x=surface.x, y=surface.y, colorscale="Viridis",
                               contours=dict(showlabels=True), colorbar=dict(title="loss")))
    fig.update_xaxes(title=surface.x_label)
    fig.update_yaxes(title=surface.y_label)
    return _layout(fig, f"Loss over its inputs, {surface.name}", height=380)


def branch_trajectory(runs: Runs) -> go.Figure:
    """The (L1, L2) path of the two-branch loss during training, one line per run, markers by step."""
    fig = go.Figure()
    for label, df, color in _each_run(runs):
        if "loss:branch_1" not in df:
            continue
        fig.add_trace(go.Scatter(x=_finite(df["loss:branch_1"]), y=_finite(df["loss:branch_2"]), mode="lines+markers",
                                 name=label, line=dict(color=color, width=1),
                                 marker=dict(size=4, color=df["step"], colorscale="Greys", showscale=False),
                                 text=[f"step {s}, alpha {a:.3f}" for s, a in zip(df["step"], df.get("alpha", df["step"] * 0))],
                                 hoverinfo="text+x+y"))
        fig.add_trace(go.Scatter(x=[_finite(df["loss:branch_1"])[-1]], y=[_finite(df["loss:branch_2"])[-1]],
                                 mode="markers", marker=dict(size=12, symbol="star", color=color),
                                 name=f"{label} end", showlegend=False))
    fig.update_xaxes(title="L1 (regression)")
    fig.update_yaxes(title="L2 (classification)")
    fig.update_layout(hovermode="closest")
    return _layout(fig, "(L1, L2) trajectory")


def board_chart(pi: np.ndarray, p: np.ndarray, mask: np.ndarray) -> go.Figure:
    """One position: target pi and predicted p over the 32 moves (25 cells on a 5x5 board, and 7 special
    moves as bars below it), illegal moves hatched."""
    def grid(v):
        return np.asarray(v[:25], dtype=float).reshape(5, 5)

    fig = make_subplots(rows=1, cols=2, subplot_titles=["target pi", "predicted p"], horizontal_spacing=0.12)
    for col, values in ((1, pi), (2, p)):
        z = grid(values)
        fig.add_trace(go.Heatmap(z=z, zmin=0, zmax=max(float(np.max(pi)), float(np.max(p)), 1e-6),
                                 colorscale="Blues", showscale=col == 2, hoverongaps=False,
                                 hovertemplate="row %{y} col %{x}<br>%{z:.3f}<extra></extra>"), row=1, col=col)
        specials = np.asarray(values[25:])
        fig.add_trace(go.Bar(x=[f"s{k}" for k in range(len(specials))], y=specials, showlegend=False,
                             marker=dict(color=["#c7c7c7" if m == 0 else "#4a90d9" for m in mask[25:]],
                                         pattern=dict(shape=["/" if m == 0 else "" for m in mask[25:]])),
                             xaxis=f"x{col + 2}", yaxis=f"y{col + 2}"))
        for cell in np.flatnonzero(np.asarray(mask[:25]) == 0):
            r, c = divmod(int(cell), 5)
            _hatch(fig, c, r, row=1, col=col)
    fig.update_layout(xaxis3=dict(domain=[0.0, 0.44], anchor="y3"), yaxis3=dict(domain=[0.0, 0.18], anchor="x3"),
                      xaxis4=dict(domain=[0.56, 1.0], anchor="y4"), yaxis4=dict(domain=[0.0, 0.18], anchor="x4"))
    fig.update_yaxes(domain=[0.28, 1.0], autorange="reversed", row=1, col=1)
    fig.update_yaxes(domain=[0.28, 1.0], autorange="reversed", row=1, col=2)
    fig.update_layout(hovermode="closest")
    return _layout(fig, "A position: illegal moves hatched (special moves below)", height=460)


def prediction_histogram(probabilities: np.ndarray, labels: np.ndarray) -> go.Figure:
    """Histogram of predicted probabilities, positives and negatives apart (log count)."""
    p = np.asarray(probabilities).ravel()
    y = np.asarray(labels).ravel() > 0.5
    fig = go.Figure()
    bins = dict(start=0.0, end=1.0, size=0.02)
    fig.add_trace(go.Histogram(x=_finite(p[~y]), name=f"negatives ({(~y).sum()})", xbins=bins, opacity=0.6))
    fig.add_trace(go.Histogram(x=_finite(p[y]), name=f"positives ({y.sum()})", xbins=bins, opacity=0.7))
    fig.update_layout(barmode="overlay", hovermode="closest")
    fig.update_yaxes(type="log", title="count")
    fig.update_xaxes(title="predicted probability", range=[0, 1])
    bad = int((~np.isfinite(p)).sum())
    return _layout(fig, "Predicted probabilities" + (f" ({bad} of {len(p)} are NaN/inf, not drawn)" if bad else ""))


def prediction_scatter(predictions: np.ndarray, targets: np.ndarray) -> go.Figure:
    """Predictions against targets with the diagonal: a maximiser moves its points away from it."""
    p, y = np.asarray(predictions).ravel(), np.asarray(targets).ravel()
    fig = go.Figure(go.Scatter(x=y, y=_finite(p), mode="markers", marker=dict(size=4, opacity=0.6), name="samples"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dash"), name="y = target"))
    fig.update_xaxes(title="target", range=[0, 1])
    fig.update_yaxes(title="prediction", range=[-0.02, 1.02])
    fig.update_layout(hovermode="closest")
    return _layout(fig, f"MSE {np.nanmean((p - y) ** 2):.4f}")


def _landscape_z(landscape):
    z = np.asarray(landscape.loss, dtype=float)
    return np.where(np.isfinite(z), z, np.nan), ~np.isfinite(z)


def _nonfinite_grid_marks(landscape, bad) -> go.Scatter | None:
    if not bad.any():
        return None
    grid_a, grid_b = np.meshgrid(landscape.alpha, landscape.beta)
    words = [_word(v) for v in np.asarray(landscape.loss)[bad]]
    return go.Scatter(x=grid_a[bad], y=grid_b[bad], mode="markers", name=f"non-finite ({int(bad.sum())})",
                      marker=dict(symbol="x", color="red", size=7), text=words, hoverinfo="text+x+y")


def landscape_contour(landscape, log_scale: bool = False) -> go.Figure:
    """Contour of the loss over the plane; the training path on top for a PCA landscape; non-finite points
    marked with red crosses (never filled in)."""
    z, bad = _landscape_z(landscape)
    shown = np.log10(np.maximum(z - np.nanmin(z), 0) + 1e-6) if log_scale and np.isfinite(z).any() else z
    fig = go.Figure(go.Contour(x=landscape.alpha, y=landscape.beta, z=shown, colorscale="Viridis", ncontours=30,
                               colorbar=dict(title="log10(loss - min)" if log_scale else "loss"),
                               customdata=z, hovertemplate="a %{x:.3f}<br>b %{y:.3f}<br>loss %{customdata:.5g}"
                                                           "<extra></extra>"))
    marks = _nonfinite_grid_marks(landscape, bad)
    if marks is not None:
        fig.add_trace(marks)
    if landscape.trajectory is not None:
        path = landscape.trajectory
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name="training path",
                                 line=dict(color="white", width=2), marker=dict(size=5, color="orange"),
                                 text=[f"step {s}" for s in landscape.trajectory_steps], hoverinfo="text"))
        fig.add_trace(go.Scatter(x=[path[0, 0]], y=[path[0, 1]], mode="markers", name="start",
                                 marker=dict(size=12, symbol="circle-open", color="orange")))
    if landscape.kind == "pca" and landscape.explained:
        a, b = landscape.explained
        title, subtitle = "Loss on the PCA plane of the training path", f"{a:.0%} and {b:.0%} of the variance"
        axes = ("1st PCA direction", "2nd PCA direction")
    else:
        title, subtitle = "Loss landscape, random plane", "two filter-normalised random directions (Li et al. 2018)"
        axes = ("direction 1", "direction 2")
    fig.update_xaxes(title=axes[0])
    fig.update_yaxes(title=axes[1])
    fig.update_layout(hovermode="closest")
    return _layout(fig, title, height=480, subtitle=subtitle)


def sharpest_chart(line) -> go.Figure:
    """The loss along the direction of greatest curvature (``surfaces.SharpestLine``), its quadratic model, the
    current weights, one gradient step at lr from them, and one from up the side (an arrow: across the valley is
    an overshoot)."""
    height = lambda t: float(np.interp(t, line.t, _finite(line.loss)))  # noqa: E731
    traces = [dict(type="scatter", x=line.t, y=_finite(line.loss), mode="lines", name="loss along v",
                   line=dict(color=COLORS[0], width=2)),
              dict(type="scatter", x=line.t, y=line.quadratic, mode="lines", name="quadratic model",
                   line=dict(color="grey", width=1, dash="dot")),
              dict(type="scatter", x=[0.0, line.step], y=[height(0.0), height(line.step)], mode="markers+text",
                   name="the weights, and one step at lr", text=["now", "one step"], textposition="top center",
                   marker=dict(size=[10, 8], color=[COLORS[0], COLORS[1]], symbol=["circle", "diamond"]))]
    arrow = dict(x=line.landing, y=height(line.landing), ax=line.start, ay=height(line.start), xref="x", yref="y",
                 axref="x", ayref="y", showarrow=True, arrowhead=3, arrowcolor=COLORS[1],
                 text=f"a step at lr {line.lr:.3g}", font=dict(color=COLORS[1], size=11))
    ratio = line.sharpness / line.limit if line.limit and math.isfinite(line.limit) else math.nan
    subtitle = (f"sharpness {line.sharpness:.4g}, 2/lr = {line.limit:.4g} ({ratio:.0%}): plain gradient steps; "
                f"loss on {line.rows} rows")
    return _figure(traces, "Loss along the sharpest direction", subtitle=subtitle, notes=[arrow],
                   xaxis=dict(title="t along the top Hessian eigenvector"), yaxis=dict(title="loss"),
                   hovermode="closest")


def landscape_surface(landscape) -> go.Figure:
    """The same grid as a 3-D surface (non-finite points leave holes, counted in the title)."""
    z, bad = _landscape_z(landscape)
    fig = go.Figure(go.Surface(x=landscape.alpha, y=landscape.beta, z=z, colorscale="Viridis", showscale=False))
    fig.update_layout(scene=dict(xaxis_title="direction 1", yaxis_title="direction 2", zaxis_title="loss"))
    holes = f" ({int(bad.sum())} non-finite points not drawn)" if bad.any() else ""
    return _layout(fig, "Loss surface" + holes, height=480)


def interpolation_chart(curve: Curve) -> go.Figure:
    """The loss along the straight line from the initial (t = 0) to the final (t = 1) weights."""
    fig = go.Figure(go.Scatter(x=curve.x, y=_finite(curve.y), mode="lines+markers", name="loss"))
    bad = ~np.isfinite(curve.y)
    if bad.any():
        edge = np.nanmax(_finite(curve.y)) if np.isfinite(curve.y).any() else 1.0
        fig.add_trace(go.Scatter(x=curve.x[bad], y=np.full(bad.sum(), edge), mode="markers", name="non-finite",
                                 marker=dict(symbol="x", color="red", size=9)))
    for t, name in ((0.0, "initial"), (1.0, "final")):
        fig.add_vline(x=t, line=dict(color="grey", dash="dot"), annotation_text=name)
    fig.update_xaxes(title=curve.x_label)
    fig.update_yaxes(title="loss")
    fig.update_layout(hovermode="closest")
    return _layout(fig, "Initial to final weights", subtitle="linear interpolation (Goodfellow et al. 2015)")


def stability_map(rows: Sequence[dict[str, Any]], keys: Sequence[str], x_values: Sequence[Any],
                  y_values: Sequence[Any] | None, color: str = "final_loss") -> go.Figure:
    """A cell per grid point coloured by ``color``; diverged cells labelled with the step of the first NaN,
    stalled cells hatched, error cells labelled; cells not finished yet stay empty. Hover shows the row."""
    y_values = list(y_values) if y_values is not None else [""]
    nx, ny = len(x_values), len(y_values)
    z = np.full((ny, nx), np.nan)
    text = np.full((ny, nx), "", dtype=object)
    hover = np.full((ny, nx), "not run yet", dtype=object)
    cells = {}
    for row in rows:
        i = list(map(str, x_values)).index(str(row[keys[0]]))
        j = list(map(str, y_values)).index(str(row[keys[1]])) if len(keys) > 1 else 0
        cells[(j, i)] = row
        value = row.get(color, np.nan)
        if row["status"] in ("ok", "stalled") and isinstance(value, (int, float)) and math.isfinite(value):
            z[j, i] = value
        text[j, i] = {"diverged": f"NaN@{row['first_nonfinite_step']}", "stalled": "stalled",
                      "error": "error"}.get(row["status"], "")
        hover[j, i] = "<br>".join(f"{k}: {_cell_text(v)}" for k, v in row.items() if v != "")
    scale = dict(colorscale="RdBu", zmin=-1, zmax=1) if color == "mean_cos" else (
        dict(colorscale="Viridis", zmin=0, zmax=1) if color.startswith("share:") else dict(colorscale="Viridis"))
    fig = go.Figure(go.Heatmap(z=z, x=[str(v) for v in x_values], y=[str(v) for v in y_values], text=text,
                               texttemplate="%{text}", customdata=hover, **scale,
                               colorbar=dict(title=color.replace("metric:", "")), hoverongaps=True,
                               hovertemplate="%{customdata}<extra></extra>", xgap=2, ygap=2))
    for (j, i), row in cells.items():
        if row["status"] == "diverged":
            fig.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=j - 0.5, y1=j + 0.5, line=dict(color="red", width=2))
        if row["status"] == "stalled":
            _hatch(fig, i, j)
    fig.update_xaxes(title=keys[0], type="category")
    fig.update_yaxes(title=keys[1] if len(keys) > 1 else "", type="category")
    fig.update_layout(hovermode="closest")
    done = len(rows)
    return _layout(fig, f"Stability map: {done} of {nx * ny} runs, coloured by {color}", height=200 + 60 * ny)


def _hatch(fig: go.Figure, x: float, y: float, **where) -> None:
    """Three diagonal strokes inside the unit cell centred on (x, y)."""
    for d in (0.0, 0.3, 0.6):
        fig.add_shape(type="line", x0=x - 0.45 + d, y0=y - 0.45, x1=x - 0.15 + d, y1=y + 0.45,
                      line=dict(color="grey", width=1), **where)


def _cell_text(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def display(records) -> pd.DataFrame:
    """Records as a table for a person: numbers with 5 significant digits, NaN and inf spelled ``nan``, ``inf``,
    ``-inf`` (a plain frame shows NaN as "None" in the browser, hiding NaN against inf); CSVs keep full
    precision."""
    df = frame(records).copy()
    for name in df.columns:
        if df[name].dtype.kind == "f":
            df[name] = [f"{v:.5g}" for v in df[name].tolist()]
    return df


def live_figures(runs: Mapping[str, Any], every: int = 0, log_y: bool = False, thinned: bool = True,
                 smoothing: float = 0.0) -> dict[str, go.Figure]:
    """Every chart the live section of a page redraws while runs train, by its place on the page: the loss and its
    terms, the gradient norm, the metrics, a per-layer heatmap per run, and with the per-term probe (measured every
    ``every`` steps; 0: off) each term's gradient norm and the cosines, and with the sharpness probe the curvature. ``runs``: label -> a bounded window of
    the run's records (``records.window``). Thinned to what the charts' widths can show (``thinned=False``: every
    point of the window, as the page drew them before)."""
    full, half = (POINTS, HALF) if thinned else (None, None)
    figures = {"loss_chart": loss_chart(runs, log_y=log_y, points=full, smoothing=smoothing),
               "grad_chart": grad_norm_chart(runs, half, smoothing), "metrics_chart": metrics_chart(runs, half, smoothing)}
    for i, (label, recs) in enumerate(runs.items()):
        figures[f"heatmap_{i}"] = layer_heatmap(recs, f"({label})", half)  # cells of 2-3 px
    probed = {label: recs for label, recs in runs.items() if len(recs) and gradients.probe_terms(frame(recs).columns)}
    if every and probed:
        figures["term_grad_chart"] = term_grad_chart(probed, every, half)
        figures["term_cosine_chart"] = term_cosine_chart(probed, every, half)
    sharp = {label: recs for label, recs in runs.items() if len(recs) and "sharpness" in frame(recs).columns}
    if sharp:
        figures["curvature_chart"] = curvature_chart(sharp, half)
    return figures
