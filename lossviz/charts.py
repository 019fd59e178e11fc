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

from . import gradients
from .records import MARKED_CHANGES, frame, knob_changes
from .surfaces import Curve, Surface

Records = Sequence[dict[str, Any]]
Runs = Mapping[str, Records]
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
DASHES = ("dash", "dot", "dashdot", "longdash")


def _layout(fig: go.Figure, title: str, height: int = 360, subtitle: str | None = None) -> go.Figure:
    """Title (short: it fits a half-width chart at 1280 px), details in a subtitle, common margins."""
    fig.update_layout(title=dict(text=title, subtitle=dict(text=subtitle)) if subtitle else title, height=height,
                      margin=dict(l=50, r=20, t=70 if subtitle else 50, b=40),
                      legend=dict(orientation="h", y=-0.2), hovermode="x unified")
    return fig


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


def _each_run(runs: Runs):
    """(label, table, colour) of every run that has records, in order."""
    for i, (label, records) in enumerate(runs.items()):
        df = frame(records)
        if not df.empty:
            yield label, df, COLORS[i % len(COLORS)]


def _nonfinite_marks(fig, df: pd.DataFrame, y_col: str, color: str, name: str) -> None:
    """Red crosses at the steps with a non-finite value, drawn at the last finite height of ``y_col``."""
    bad = df[df["nonfinite"] > 0]
    if bad.empty:
        return
    height = pd.Series(_finite(df[y_col])).ffill().bfill().fillna(0.0).to_numpy()
    where = df.index.get_indexer(bad.index)
    text = [f"step {s}: {n} non-finite, first in {p or '?'}" for s, n, p in
            zip(bad["step"], bad["nonfinite"], bad["first_nonfinite"])]
    trace = go.Scatter(x=bad["step"], y=height[where], mode="markers", name=f"{name} non-finite",
                       marker=dict(symbol="x", size=9, color="red", line=dict(color=color, width=1)),
                       text=text, hoverinfo="text")
    fig.add_trace(trace)


def change_markers(fig: go.Figure, runs: Runs, xrefs: Sequence[str] = ("x",)) -> None:
    """A dashed vertical line at every step where a run's knobs changed, labelled e.g. ``penalty 10 -> 50``
    (prefixed by the run's name when several runs are drawn), on each x axis of ``xrefs``. Added in one layout
    update: plotly's ``add_vline`` costs milliseconds a call, too much for a redraw."""
    shapes, notes = [], []
    for label, records in runs.items():
        by_step: dict[int, list[str]] = {}
        for step, key, old, new in knob_changes(records)[-MARKED_CHANGES:]:
            by_step.setdefault(step, []).append(f"{key} {old:g} -> {new:g}")
        prefix = f"{label.split(':')[0]}: " if len(runs) > 1 else ""
        for step, words in by_step.items():
            for xref in xrefs:
                shapes.append(dict(type="line", xref=xref, yref="paper", x0=step, x1=step, y0=0, y1=1,
                                   line=dict(color="grey", dash="dash", width=1)))
                notes.append(dict(xref=xref, yref="paper", x=step, y=1, text=prefix + ", ".join(words),
                                  showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=10, color="grey")))
    if shapes:
        fig.update_layout(shapes=list(fig.layout.shapes) + shapes, annotations=list(fig.layout.annotations) + notes)


def loss_chart(runs: Runs, log_y: bool = False) -> go.Figure:
    """Total loss (solid) and each loss term (dashed) over steps, non-finite steps marked."""
    fig = go.Figure()
    for label, df, color in _each_run(runs):
        fig.add_trace(go.Scatter(x=df["step"], y=_finite(df["loss"]), name=f"{label} loss",
                                 line=dict(color=color, width=2)))
        terms = [c for c in df.columns if c.startswith("loss:")]
        for j, term in enumerate(terms):
            fig.add_trace(go.Scatter(x=df["step"], y=_finite(df[term]), name=f"{label} {term[5:]}",
                                     line=dict(color=color, width=1, dash=DASHES[j % len(DASHES)])))
        _nonfinite_marks(fig, df, "loss", color, label)
        first = df[df["nonfinite"] > 0]
        if not first.empty:
            fig.add_vline(x=int(first["step"].iloc[0]), line=dict(color="red", dash="dot"),
                          annotation_text=f"first NaN/inf ({label})", annotation_position="top left")
    change_markers(fig, runs)
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_xaxes(title="step")
    return _layout(fig, "Loss and its terms")


def grad_norm_chart(runs: Runs) -> go.Figure:
    """Global gradient norm (before clipping) over steps, log scale."""
    fig = go.Figure()
    for label, df, color in _each_run(runs):
        fig.add_trace(go.Scatter(x=df["step"], y=_finite(df["grad_norm"]), name=label, line=dict(color=color)))
        _nonfinite_marks(fig, df, "grad_norm", color, label)
    change_markers(fig, runs)
    fig.update_yaxes(type="log", title="global gradient norm")
    fig.update_xaxes(title="step")
    return _layout(fig, "Gradient norm")


def layer_heatmap(records: Records, label: str = "") -> go.Figure:
    """Per-layer gradient norms, layers x steps, coloured by log10(norm); non-finite cells marked."""
    df = frame(records)
    layers = [c for c in df.columns if c.startswith("grad_norm:")]
    values = df[layers].to_numpy(dtype=float).T if layers else np.zeros((0, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(values) & (values > 0), np.log10(np.where(values > 0, values, 1.0)), np.nan)
    names = [c[len("grad_norm:"):] for c in layers]
    fig = go.Figure(go.Heatmap(z=logs, x=df["step"] if len(df) else [], y=names, colorscale="Viridis",
                               colorbar=dict(title="log10 norm"), hoverongaps=False,
                               hovertemplate="step %{x}<br>%{y}<br>log10 norm %{z:.2f}<extra></extra>"))
    bad_layer, bad_step = np.nonzero(~np.isfinite(values)) if values.size else ([], [])
    if len(bad_layer):
        fig.add_trace(go.Scatter(x=df["step"].to_numpy()[bad_step], y=[names[i] for i in bad_layer], mode="markers",
                                 marker=dict(symbol="x", color="red", size=6), name="non-finite"))
    change_markers(fig, {label: records})
    fig.update_xaxes(title="step")
    return _layout(fig, f"Gradient norm per layer {label}".strip(), height=120 + 28 * max(len(names), 3))


def _probed(runs: Runs, every: int):
    """(label, measured rows, dash) of every run with the per-term gradient probe."""
    for i, (label, records) in enumerate(runs.items()):
        df = frame(records)
        if df.empty or not gradients.probe_terms(df.columns):
            continue
        yield label, df[gradients.measured_steps(df["step"], every)], RUN_DASHES[i % len(RUN_DASHES)]


RUN_DASHES = ("solid", "dot", "dash", "dashdot")


def term_grad_chart(runs: Runs, every: int = 1) -> go.Figure:
    """Each term's own gradient norm over the measured steps, log scale: one colour per term, one dash per run."""
    fig = go.Figure()
    for label, df, dash in _probed(runs, every):
        for j, term in enumerate(gradients.probe_terms(df.columns)):
            values = np.asarray(df[f"grad_norm@{term}"], dtype=float)
            fig.add_trace(go.Scatter(x=df["step"], y=np.where(np.isfinite(values) & (values > 0), values, np.nan),
                                     name=f"{label} {term}", line=dict(color=COLORS[j % len(COLORS)], dash=dash)))
            bad = ~np.isfinite(values)
            if bad.any():
                fig.add_trace(go.Scatter(x=df["step"][bad], y=np.ones(int(bad.sum())), mode="markers",
                                         name=f"{label} {term} non-finite", text=[_word(v) for v in values[bad]],
                                         marker=dict(symbol="x", color="red", size=9), hoverinfo="text+x"))
    change_markers(fig, runs)
    fig.update_yaxes(type="log", title="gradient norm of the term")
    fig.update_xaxes(title="step")
    return _layout(fig, "Gradient norm per term")


def term_cosine_chart(runs: Runs, every: int = 1) -> go.Figure:
    """The cosine between each pair of terms' gradients over the measured steps, the zero line, and the area
    between the curve and zero shaded where they conflict (cosine < 0), in the pair's colour."""
    fig = go.Figure()
    for label, df, dash in _probed(runs, every):
        for j, (a, b) in enumerate(gradients.pairs(gradients.probe_terms(df.columns))):
            color = COLORS[(j + 3) % len(COLORS)]
            cos = gradients.pair_cosine(df, a, b)  # gaps where a term has no gradient
            name = f"{label} {a} vs {b}"
            fig.add_trace(go.Scatter(x=df["step"], y=np.minimum(cos, 0.0), fill="tozeroy", mode="none",
                                     fillcolor=_translucent(color), name=f"{name} conflicts", legendgroup=name,
                                     showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=df["step"], y=cos, name=name, legendgroup=name, connectgaps=False,
                                     line=dict(color=color, dash=dash)))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    change_markers(fig, runs)
    fig.update_yaxes(range=[-1.05, 1.05], title="cosine")
    fig.update_xaxes(title="step")
    return _layout(fig, "Cosine between terms",
                   subtitle="shaded: the terms conflict (cosine < 0); gaps: a term has no gradient")


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


def metrics_chart(runs: Runs) -> go.Figure:
    """One panel per metric (and alpha where the demo has one), every run overlaid."""
    first = next((frame(r) for r in runs.values() if len(r)), pd.DataFrame())
    names = [c for c in first.columns if c.startswith("metric:") or c == "alpha"]
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=[n.replace("metric:", "") for n in names])
    for label, df, color in _each_run(runs):
        for j, name in enumerate(names):
            if name in df:
                fig.add_trace(go.Scatter(x=df["step"], y=_finite(df[name]), name=label, legendgroup=label,
                                         showlegend=j == 0, line=dict(color=color, shape="hv")), row=1, col=j + 1)
    if names:
        change_markers(fig, runs, xrefs=[f"x{j + 1}" if j else "x" for j in range(len(names))])
    fig.update_xaxes(title="step")
    return _layout(fig, "Metrics", height=320)


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
