"""Runs shared as one file: a standalone HTML report of lossviz CSVs, with the charts the Runs page draws.

    python -m lossviz report RUN.csv [RUN.csv ...] --out report.html
    lossviz.report(["run.csv", "sweep.csv"])        # in a notebook: shown inline (``_repr_html_``)

plotly.js is written into the file once, inline: the report opens with no network (from a USB stick, a mail, a
course page), unlike a link to a server. By kind, as on the Runs page: train runs overlaid (every live chart,
the knob markers, the NaN marks), each with its settings and, when known, the command that reproduces it; a
Keras Recorder's fit (loss, update norms, metrics); a sweep's stability map; a landscape's contour and surface.
Every text of a file (its name, its cells) is escaped: a report shows them, never runs them.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

from . import charts, records, runfiles
from .surfaces import Landscape


@dataclass(frozen=True)
class Shared:
    """One CSV of a report, with what reproduces it when known (``train --out`` writes it beside the file)."""
    file: runfiles.RunFile
    command: str | None = None


def read(path: str | os.PathLike) -> Shared:
    """A lossviz CSV from a path, with its sidecar's command when there is one; ``runfiles.RunFileError`` (one
    line naming the file) for a file that is missing, empty or not lossviz's."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise runfiles.RunFileError(f"{path}: {e.strerror or e}") from None
    found = runfiles.parse(data, path.name)
    return Shared(found, _command_beside(path))


def _command_beside(path: Path) -> str | None:
    try:
        meta = json.loads(Path(f"{path}{records.META_SUFFIX}").read_text())
    except (OSError, ValueError):
        return None
    command = meta.get("command") if isinstance(meta, dict) else None
    return command if isinstance(command, str) else None


def figures(shared: Sequence[Shared]) -> list[tuple[str, go.Figure]]:
    """Every chart of the report, (section title, figure), in the Runs page's order."""
    files = [s.file for s in shared]
    trains = [f for f in files if f.kind == "train" and not f.recorder]
    fits = [f for f in files if f.kind == "train" and f.recorder]
    out: list[tuple[str, go.Figure]] = []
    if trains:
        out += [("Training runs", fig) for fig in train_figures({f.name: records.window(f.rows) for f in trains})]
    if fits:
        out += [("Recorded with lossviz.keras.Recorder", fig)
                for fig in fit_figures({f.name: records.window(f.rows) for f in fits})]
    for f in files:
        if f.kind == "sweep":
            out.append((f"Sweep: {f.name}", sweep_figure(f)))
        elif f.kind == "landscape":
            out += [(f"Landscape: {f.name}", fig) for fig in landscape_figures(f)]
    return out


def train_figures(runs: dict) -> list[go.Figure]:
    """The live charts of train runs, overlaid (the demo pages' and the Runs page's ``charts.live_figures``)."""
    every = 1 if any(c.startswith("grad_norm@") for table in runs.values() for c in table.columns) else 0
    return list(charts.live_figures(runs, every).values())


def fit_figures(runs: dict, log_y: bool = False, smoothing: float = 0.0) -> list[go.Figure]:
    """A Keras Recorder's runs: the loss, the update norms (a callback sees no gradients), the metrics, a heatmap
    per run."""
    return [charts.loss_chart(runs, log_y, smoothing=smoothing),
            charts.grad_norm_chart(runs, smoothing=smoothing, column="update_norm", title="Update norm"),
            charts.metrics_chart(runs, smoothing=smoothing)] + [
        charts.layer_heatmap(table, f"({label})", prefix="update_norm", title="Update norm per layer")
        for label, table in runs.items()]


def sweep_colours(f: runfiles.RunFile) -> list[str]:
    """What a sweep's cells can be coloured by, the final loss first."""
    t = f.table
    return [c for c in ("final_loss", "best_loss", "max_grad_norm") if c in t] + \
        [c for c in t.columns if c.startswith("metric:") or c.startswith("share:") or c == "mean_cos"]


def sweep_figure(f: runfiles.RunFile, color: str | None = None) -> go.Figure:
    """A sweep file's stability map, coloured by ``color`` (default: the final loss)."""
    t = f.table
    keys = list(t.columns[:list(t.columns).index("status")])[:2]
    if not keys:
        raise runfiles.RunFileError(f"{f.name}: a sweep file without grid columns before status")
    rows = [{k: ("" if isinstance(v, float) and np.isnan(v) and k in runfiles.TEXT_COLUMNS else v)
             for k, v in row.items()} for row in t.to_dict("records")]
    x_values = list(dict.fromkeys(t[keys[0]].tolist()))
    y_values = list(dict.fromkeys(t[keys[1]].tolist())) if len(keys) > 1 else None
    return charts.stability_map(rows, keys, x_values, y_values, color or sweep_colours(f)[0])


def landscape_of(f: runfiles.RunFile) -> Landscape:
    """A landscape file's grid; ``RunFileError`` when its rows are not a full grid."""
    t = f.table
    alpha, beta = np.unique(t["alpha"].to_numpy(float)), np.unique(t["beta"].to_numpy(float))
    if len(alpha) * len(beta) != len(t):
        raise runfiles.RunFileError(f"{f.name}: {len(t)} rows are not a full grid of {len(alpha)} x {len(beta)} points")
    grid = t.pivot(index="beta", columns="alpha", values="loss").reindex(index=beta, columns=alpha).to_numpy(float)
    return Landscape(alpha, beta, grid, "random")


def landscape_figures(f: runfiles.RunFile) -> list[go.Figure]:
    landscape = landscape_of(f)
    return [charts.landscape_contour(landscape), charts.landscape_surface(landscape)]


@dataclass
class Report:
    """A standalone HTML report of lossviz CSVs (``html()``; a notebook shows it inline)."""
    shared: list[Shared]
    title: str = "lossviz report"
    _html: str | None = field(default=None, repr=False)

    def html(self) -> str:
        if self._html is None:
            self._html = _page(self.title, self.shared)
        return self._html

    def _repr_html_(self) -> str:
        return self.html()

    def write(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.html(), encoding="utf-8")


def report(sources: Iterable, title: str = "lossviz report") -> Report:
    """A report of CSV paths, ``runfiles.RunFile``s or ``Shared``s."""
    shared = []
    for source in sources:
        if isinstance(source, Shared):
            shared.append(source)
        elif isinstance(source, runfiles.RunFile):
            shared.append(Shared(source))
        else:
            shared.append(read(source))
    if not shared:
        raise runfiles.RunFileError("a report needs at least one lossviz CSV")
    return Report(shared, title)


def of_csv(text: str, name: str, command: str | None = None, title: str = "lossviz report") -> Report:
    """The report of one run held as CSV text (a page's run: its records' CSV and its command)."""
    return Report([Shared(runfiles.parse(text.encode(), name), command)], title)


def _page(title: str, shared: Sequence[Shared]) -> str:
    from plotly.offline import get_plotlyjs

    parts = [f"<h1>{html.escape(title)}</h1>", _runs_table(shared)]
    section = None
    for i, (heading, fig) in enumerate(figures(shared)):
        if heading != section:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            section = heading
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{i}",
                                 config={"displaylogo": False}))
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body>\n{body}\n</body></html>\n")


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
          "pre{background:#f4f4f4;padding:8px;white-space:pre-wrap;word-break:break-all}")


def _runs_table(shared: Sequence[Shared]) -> str:
    """One row per file: its kind, its length, its last loss, its first NaN/inf, its settings; the commands below."""
    rows, commands = [], []
    for s in shared:
        f = s.file
        cells = [f.name, _kind(f), str(f.rows.total if f.kind == "train" else len(f.rows))]
        if f.kind == "train" and len(f.rows):
            bad = f.rows.nonfinite_rows()
            last = float(f.rows.column("loss")[-1])
            cells += [_number(last), str(int(f.rows.column("step")[bad[0]])) if len(bad) else "",
                      ", ".join(f"{k}={_number(v)}" for k, v in f.settings.items())]
        else:
            cells += ["", "", ""]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        if s.command:
            commands.append(f"<p>{html.escape(f.name)} reproduces with:</p><pre>{html.escape(s.command)}</pre>")
    head = "".join(f"<th>{h}</th>" for h in ("file", "kind", "rows", "last loss", "first NaN/inf", "settings"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>" + "".join(commands)


def _kind(f: runfiles.RunFile) -> str:
    return "Keras callback" if f.recorder else {"train": "lossviz run"}.get(f.kind, f.kind)


def _number(v: float) -> str:
    return f"{v:.5g}" if math.isfinite(v) else str(v)
