"""lossviz CSVs from anywhere: a run of ``train`` (or of the Keras ``Recorder``), a ``sweep``, a ``landscape``;
read whole or as they grow, listed from a folder, each checked with one line naming the file and the problem.

A file is read by its complete lines, a chunk at a time, into columns of bounded length (:class:`Rows`), so a
file of a million rows costs a redraw what a short one costs. A path always stays inside the folder it was given:
no ``..``, no absolute path, no symbolic link out of it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .records import KNOB_PREFIX, MAX_ROWS, RECENT_ROWS, changed_rows, compact, thinning

MAX_BYTES = 200 * 1024 * 1024  # the largest upload (a file in the runs folder has no limit: it is read by chunks)
CHUNK_BYTES = 16 * 1024 * 1024  # a file is parsed this much at a time
KINDS = {  # kind -> the columns that make it (checked in this order)
    "landscape": ("alpha", "beta", "loss"),
    "sweep": ("status", "final_loss", "best_loss", "steps"),
    "train": ("step", "loss"),
}
TEXT_COLUMNS = ("first_nonfinite", "nonfinite_in", "status", "message", "first_nonfinite_step")
NUMBER_COLUMNS = ("step", "loss", "alpha", "beta", "final_loss")  # a cell of these that is not a number is an error
MISSING = ["", "nan", "NaN", "NAN", "-nan", "-NaN", "-NAN"]  # a number column's cells read as NaN


class RunFileError(ValueError):
    """A file that is not a lossviz CSV, or cannot be read; the message is one line naming the file."""


@dataclass
class RunFile:
    name: str
    kind: str  # "train" | "sweep" | "landscape"
    rows: Rows
    size: int = 0

    @property
    def table(self) -> pd.DataFrame:
        """Every row kept as a frame (a train run's page draws from ``records.window(rows)`` instead)."""
        return self.rows.frame()

    @property
    def recorder(self) -> bool:
        """A Keras callback's run: update norms, no gradients or terms' own gradients."""
        return self.kind == "train" and "update_norm" in self.rows.columns and "grad_norm" not in self.rows.columns

    @property
    def settings(self) -> dict[str, float]:
        """A train run's knobs at its first step (its ``set:<key>`` columns)."""
        if self.kind != "train" or not len(self.rows):
            return {}
        return {c[len(KNOB_PREFIX):]: self.rows.column(c)[0] for c in self.rows.columns if c.startswith(KNOB_PREFIX)}


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
    """A whole file's bytes (an upload) as a checked :class:`RunFile`."""
    if len(data) > MAX_BYTES:
        raise RunFileError(f"{name}: {len(data) / 2**20:.0f} MiB is larger than the {MAX_BYTES // 2**20} MiB limit")
    reader = Reader(name)
    reader.feed(data, final=True)
    return reader.run()


class Reader:
    """A lossviz CSV read from its bytes as they come: ``feed`` parses the complete lines among the next bytes (a
    line still being written waits for its newline, unless ``final``), checks them and adds them to ``rows``."""

    def __init__(self, name: str):
        self.name, self.offset, self.seen = name, 0, False
        self.header: list[str] | None = None
        self.kind = ""
        self.rows: Rows | None = None

    def feed(self, data: bytes, final: bool = False) -> int:
        """Parse the complete lines at the start of ``data`` (all of it if ``final``); return the bytes taken."""
        self.seen = self.seen or bool(data.strip())
        end = len(data) if final else data.rfind(b"\n") + 1
        body = data[:end]
        _check_utf8(body, self.name, self.offset)
        if self.header is None and body.strip():
            start = len(body) - len(body.lstrip())
            line_end = body.find(b"\n", start)
            line_end = len(body) if line_end < 0 else line_end + 1
            header = next(csv.reader([body[start:line_end].decode("utf-8").rstrip("\r\n")]))
            self.kind = kind_of(header, self.name)
            self.rows = Rows(_typed(pd.DataFrame({c: pd.Series([], dtype=object) for c in header}), self.name, 2))
            self.header, body = header, body[line_end:]
        if self.header is not None and body.strip():
            first_row = self.rows.total + 2
            _check_fields(body, len(self.header), self.name, first_row)
            self.rows.add(_rows(body, self.header, self.name, first_row))
        self.offset += end
        return end

    def run(self) -> RunFile:
        if self.rows is None:
            raise RunFileError(f"{self.name}: " + ("no complete line yet" if self.seen else "the file is empty"))
        return RunFile(self.name, self.kind, self.rows, size=self.offset)


def _check_utf8(data: bytes, name: str, offset: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{name}: not UTF-8 text (byte {offset + e.start}): a lossviz CSV is UTF-8") from None


def _check_fields(body: bytes, fields: int, name: str, first_row: int) -> None:
    """Every non-blank line of ``body`` has ``fields`` fields; else one line naming the row."""
    if b'"' in body:  # quoted cells may hold commas or line breaks: the csv module counts
        rows = [len(r) for r in csv.reader(io.StringIO(body.decode("utf-8"))) if r]
    else:
        rows = [line.count(b",") + 1 for line in body.split(b"\n") if line.strip()]
    for i, count in enumerate(rows):
        if count != fields:
            raise RunFileError(f"{name}: row {first_row + i} has {count} fields, the header has {fields}")


def _text(column: str) -> bool:
    return column in TEXT_COLUMNS or column.startswith("status")


def _rows(body: bytes, header: list[str], name: str, first_row: int) -> pd.DataFrame:
    """Complete lines (no header) as a typed frame, parsed by pandas' C reader."""
    try:
        table = pd.read_csv(io.BytesIO(body), header=None, names=header, index_col=False, keep_default_na=False,
                            dtype={c: str for c in header if _text(c)},
                            na_values={c: MISSING for c in header if not _text(c)}, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as e:
        found = re.search(r"line (\d+)", str(e))
        where = f"row {first_row + int(found.group(1)) - 1}" if found else "a row"
        raise RunFileError(f"{name}: {where} cannot be read as CSV") from None
    return _typed(table, name, first_row)


def _typed(table: pd.DataFrame, name: str, first_row: int) -> pd.DataFrame:
    """Text columns as text ("" for none), number columns as numbers (a cell that is no number is an error in the
    columns that must be numbers; elsewhere the column is text, e.g. a sweep's choice values); a train run without
    the non-finite columns gets them from its loss."""
    for column in table.columns:
        if _text(column):
            table[column] = table[column].fillna("").astype(object)
            continue
        if table[column].dtype.kind in "biuf":
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & ~table[column].astype(str).str.strip().isin(MISSING)
        if bad.any():
            if column in NUMBER_COLUMNS:
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise RunFileError(f"{name}: row {first_row + i}: {column} is {table[column].iloc[i]!r}, not a number")
            table[column] = table[column].astype(object)
            continue
        table[column] = values
    if "step" in table and "nonfinite" not in table:
        table["nonfinite"] = (~np.isfinite(table["loss"].to_numpy(float))).astype(int)
    for column in ("first_nonfinite", "nonfinite_in"):
        if "step" in table and column not in table:
            table[column] = ""
    return table


class Rows:
    """A CSV's rows as columns that grow by chunks (each a numpy array with room to spare, doubled when full), so
    adding rows costs what they cost however long the file is, and a frame of any rows is cut from them.

    Memory is bounded as a live run's :class:`lossviz.records.RecordLog` is: past ``max_rows`` kept, the rows
    before the last ``recent`` are thinned to every other one, always keeping the first row, the first non-finite
    one and every knob change; ``total`` and ``nonfinite_total`` count every row read. Quacks as a RecordLog does
    for ``records.window``: ``frame``, ``change_rows``, ``nonfinite_rows``."""

    def __init__(self, empty: pd.DataFrame, max_rows: int | None = None, recent: int | None = None):
        self.columns = list(empty.columns)
        self._data = {c: empty[c].to_numpy() for c in self.columns}
        self._n, self._max, self._recent = 0, max_rows or MAX_ROWS, recent or RECENT_ROWS
        self.total = 0  # rows read
        self.nonfinite_total = 0  # ... with a NaN/inf
        self.thinned = 0  # rows dropped to stay within max_rows

    def __len__(self) -> int:
        return self._n

    def add(self, chunk: pd.DataFrame) -> None:
        for start in range(0, len(chunk), self._max // 2):  # a chunk longer than the room is added in parts
            self._add(chunk.iloc[start:start + self._max // 2])

    def _add(self, chunk: pd.DataFrame) -> None:
        k = len(chunk)
        if self._n + k > self._max:
            self._thin()
        n = self._n
        for c in self.columns:
            values, old = chunk[c].to_numpy(), self._data[c]
            dtype = values.dtype if n == 0 else _common(old.dtype, values.dtype)
            if len(old) < n + k or dtype != old.dtype:
                grown = np.empty(max(n + k, 2 * len(old), 256), dtype)
                grown[:n] = old[:n]
                self._data[c] = old = grown
            old[n:n + k] = values
        self._n += k
        self.total += k
        if "nonfinite" in self._data:
            self.nonfinite_total += int(np.count_nonzero(self._data["nonfinite"][n:n + k] > 0))

    def _thin(self) -> None:
        keep = thinning(self._n, self._recent, self.change_rows() + self.nonfinite_rows()[:1].tolist())
        kept = compact(self._data.values(), keep)
        self.thinned += self._n - kept
        self._n = kept

    def column(self, name: str) -> np.ndarray:
        """One column, every row kept (a view: no copy)."""
        return self._data[name][: self._n]

    def frame(self, rows=None) -> pd.DataFrame:
        """The rows ``rows`` (every row kept if None) as a frame."""
        pick = slice(0, self._n) if rows is None else np.asarray(list(rows), dtype=np.int64)
        return pd.DataFrame({c: self._data[c][pick] for c in self.columns})

    def nonfinite_rows(self) -> np.ndarray:
        return np.flatnonzero(self.column("nonfinite") > 0) if "nonfinite" in self._data else np.zeros(0, np.int64)

    def change_rows(self) -> list[int]:
        """The rows whose knobs (``set:`` columns) differ from the row before, with the row before each."""
        return changed_rows([self.column(c) for c in self.columns if c.startswith(KNOB_PREFIX)])


def _common(a: np.dtype, b: np.dtype) -> np.dtype:
    """The dtype that holds both (a column that turns out to hold text becomes text)."""
    if a == b:
        return a
    if a.kind in "biuf" and b.kind in "biuf":
        return np.result_type(a, b)
    return np.dtype(object)


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
    one (a row still being written waits for its newline), a chunk at a time, into the same rows: a long file is
    read once, and a read costs what the new lines cost."""

    folder: str
    relative: str
    _reader: Reader | None = None
    _run: RunFile | None = None
    modified: float = 0.0

    def read(self) -> RunFile:
        path = inside(self.folder, self.relative)
        try:
            stat = path.stat()
        except OSError:
            raise RunFileError(f"{self.relative}: no such file in the runs folder") from None
        if self._reader is None or stat.st_size < self._reader.offset:  # new, or rewritten from the start
            self._reader, self._run = Reader(self.relative), None
        self.modified = stat.st_mtime
        if self._run is not None and stat.st_size == self._reader.offset:
            return self._run
        size = CHUNK_BYTES
        with open(path, "rb") as f:
            while self._reader.offset < stat.st_size:
                f.seek(self._reader.offset)
                data = f.read(min(size, stat.st_size - self._reader.offset))
                if not self._reader.feed(data):
                    if self._reader.offset + len(data) >= stat.st_size:
                        break  # the last line is still being written
                    size *= 2  # a line longer than a chunk
        self._run = self._reader.run()
        return self._run
