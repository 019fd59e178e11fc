"""lossviz CSVs from anywhere: a run of ``train`` (or of the Keras ``Recorder``), a ``sweep``, a ``landscape``;
read whole or as they grow, listed from a folder, each checked with one line naming the file and the problem.

A path always stays inside the folder it was given: no ``..``, no absolute path, no symbolic link out of it.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

MAX_BYTES = 200 * 1024 * 1024  # the largest file read (the upload limit of the page too)
KINDS = {  # kind -> the columns that make it (checked in this order)
    "landscape": ("alpha", "beta", "loss"),
    "sweep": ("status", "final_loss", "best_loss", "steps"),
    "train": ("step", "loss"),
}
TEXT_COLUMNS = ("first_nonfinite", "nonfinite_in", "status", "message", "first_nonfinite_step")


class RunFileError(ValueError):
    """A file that is not a lossviz CSV, or cannot be read; the message is one line naming the file."""


@dataclass
class RunFile:
    name: str
    kind: str  # "train" | "sweep" | "landscape"
    table: pd.DataFrame
    recorder: bool = False  # a Keras callback's run: update norms, no gradients or terms' own gradients
    size: int = 0

    @property
    def settings(self) -> dict[str, float]:
        """A train run's knobs at its first step (its ``set:<key>`` columns)."""
        if self.kind != "train" or self.table.empty:
            return {}
        return {c[4:]: self.table[c].iloc[0] for c in self.table.columns if c.startswith("set:")}


def kind_of(columns, name: str = "the file") -> str:
    """The kind of a lossviz CSV from its columns; raises naming the missing ones of the nearest kind."""
    have = set(columns)
    for kind, needed in KINDS.items():
        if set(needed) <= have:
            return kind
    nearest = max(KINDS, key=lambda k: len(set(KINDS[k]) & have))
    missing = [c for c in KINDS[nearest] if c not in have]
    raise RunFileError(f"{name}: not a lossviz CSV (a {nearest} file would have the columns "
                       f"{', '.join(missing)})")


def parse(data: bytes, name: str) -> RunFile:
    """A whole file's bytes as a checked :class:`RunFile`."""
    if len(data) > MAX_BYTES:
        raise RunFileError(f"{name}: {len(data) / 2**20:.0f} MiB is larger than the {MAX_BYTES // 2**20} MiB limit")
    if not data.strip():
        raise RunFileError(f"{name}: the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{name}: not UTF-8 text (byte {e.start}): a lossviz CSV is UTF-8") from None
    return _from_text(text, name, len(data))


def _from_text(text: str, name: str, size: int) -> RunFile:
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [r for r in rows[1:] if r]
    kind = kind_of(header, name)
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise RunFileError(f"{name}: row {i + 2} has {len(row)} fields, the header has {len(header)}")
    table = _table(header, body, name)
    return RunFile(name, kind, table, recorder=kind == "train" and "update_norm" in header and "grad_norm" not in header,
                   size=size)


def _table(header: list[str], body: list[list[str]], name: str) -> pd.DataFrame:
    table = pd.DataFrame(body, columns=header)
    for column in header:
        if column in TEXT_COLUMNS or column.startswith("status"):
            table[column] = table[column].fillna("")
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & ~table[column].str.strip().str.lower().isin(["nan", "", "-nan"])
        if bad.any():
            if column in ("step", "loss", "alpha", "beta", "final_loss"):
                row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
                raise RunFileError(f"{name}: row {row}: {column} is {table[column].iloc[row - 2]!r}, not a number")
            continue  # a text column (e.g. a sweep's grid values of a choice setting)
        table[column] = values
    if "step" in table and "nonfinite" not in table:
        table["nonfinite"] = (~np.isfinite(table["loss"].to_numpy(float))).astype(int)
    for column in ("first_nonfinite", "nonfinite_in"):
        if "step" in table and column not in table:
            table[column] = ""
    return table


# ----------------------------------------------------------------------------- a folder

def inside(folder: str | os.PathLike, relative: str) -> Path:
    """``folder/relative``, refused (RunFileError) unless it stays inside ``folder`` once every link is resolved:
    no absolute path, no ``..``, no symbolic link out."""
    root = Path(folder).resolve()
    if not relative or os.path.isabs(relative) or Path(relative).drive or ".." in Path(relative).parts:
        raise RunFileError(f"{relative!r}: not a path inside the runs folder")
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise RunFileError(f"{relative!r}: leads out of the runs folder")
    return path


def listing(folder: str | os.PathLike) -> list[str]:
    """The CSVs under ``folder`` (relative paths), newest first; links out of the folder are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise RunFileError(f"{folder}: no such folder")
    found = []
    for path in root.rglob("*.csv"):
        relative = path.relative_to(root).as_posix()
        try:
            real = inside(root, relative)
        except RunFileError:
            continue
        if real.is_file():
            found.append((real.stat().st_mtime, relative))
    return [name for _, name in sorted(found, key=lambda item: (-item[0], item[1]))]


@dataclass
class Tail:
    """A file in a folder read as it grows: each ``read()`` parses only the complete lines added since the last
    one (a row still being written waits for its newline), so a long file is read once."""

    folder: str
    relative: str
    _offset: int = 0
    _header: list[str] | None = None
    _parts: list[pd.DataFrame] = field(default_factory=list)
    _run: RunFile | None = None
    modified: float = 0.0

    def read(self) -> RunFile:
        path = inside(self.folder, self.relative)
        try:
            stat = path.stat()
        except OSError:
            raise RunFileError(f"{self.relative}: no such file in the runs folder") from None
        if stat.st_size > MAX_BYTES:
            raise RunFileError(f"{self.relative}: {stat.st_size / 2**20:.0f} MiB is larger than the "
                               f"{MAX_BYTES // 2**20} MiB limit")
        if stat.st_size < self._offset:  # rewritten from the start
            self._offset, self._header, self._parts, self._run = 0, None, [], None
        self.modified = stat.st_mtime
        if self._run is not None and stat.st_size == self._offset:
            return self._run
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(stat.st_size - self._offset)
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            if self._run is None:
                if not chunk.strip():
                    raise RunFileError(f"{self.relative}: the file is empty")
                raise RunFileError(f"{self.relative}: no complete line yet")
            return self._run
        try:
            text = chunk[:end].decode("utf-8")
        except UnicodeDecodeError as e:
            raise RunFileError(f"{self.relative}: not UTF-8 text (byte {self._offset + e.start}): a lossviz CSV is "
                               f"UTF-8") from None
        self._offset += end
        if self._header is None:
            head, _, text = text.partition("\n")
            self._header = next(csv.reader([head]))
            kind_of(self._header, self.relative)
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        first_row = 2 + sum(len(p) for p in self._parts)
        for i, row in enumerate(rows):
            if len(row) != len(self._header):
                raise RunFileError(f"{self.relative}: row {first_row + i} has {len(row)} fields, the header has "
                                   f"{len(self._header)}")
        if rows:
            self._parts.append(_table(self._header, rows, self.relative))
        table = pd.concat(self._parts, ignore_index=True) if self._parts else _table(self._header, [], self.relative)
        self._parts = [table]
        self._run = RunFile(self.relative, kind_of(self._header, self.relative), table,
                            recorder="update_norm" in self._header and "grad_norm" not in self._header,
                            size=self._offset)
        return self._run
