"""Per-step records (the trainer's plain dicts) as CSV text and as words: the one format the CLI, the
pages and the tests share."""

from __future__ import annotations

import csv
import io
from typing import Any, Callable, Iterable, Sequence, TextIO

import numpy as np

from . import lazy

pd = lazy.module("pandas")  # on first use: the navigation imports this module's users and draws at once

MARKED_CHANGES = 20  # the latest knob changes a chart marks (a redraw stays cheap)
MAX_ROWS = 100_000  # a run's log holds at most this many records (about 20 MB for the widest demo)
RECENT_ROWS = 20_000  # ... and always every step of the most recent ones
KNOB_PREFIX = "set:"
META_SUFFIX = ".lossviz.json"  # beside a CSV the CLI writes: what made it (a train's command, a sweep's grid)


def columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """All keys in first-seen order (every record of one run has the same keys)."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return list(seen)


def write_csv(records: Iterable[dict[str, Any]], out: TextIO, header: Sequence[str] | None = None) -> None:
    """One row per record; non-finite floats are written as ``nan``, ``inf``, ``-inf``."""
    records = list(records)
    writer = CsvWriter(out, header or columns(records))
    for r in records:
        writer.write(r)
    writer.start()


class CsvWriter:
    """Rows written as records arrive (the header from ``header`` or the first record), so a run that is
    killed leaves every row written so far in the file; ``flush()`` pushes them to the disk. ``append``: the
    header is in the file already (a run going on in the same file). A record may leave a column out (an
    empty cell); a key that is not a column is an error."""

    def __init__(self, out: TextIO, header: Sequence[str] | None = None, append: bool = False):
        self.out, self.header, self.rows = out, list(header) if header else None, 0
        self._writer = csv.writer(out, lineterminator="\n")
        self._append, self._columns = append, None

    def start(self, first: dict[str, Any] | None = None) -> None:
        """Write the header (once; not when appending)."""
        if self._columns is None:
            self.header = self.header or list(first or {})
            self._columns = set(self.header)
            if not self._append:
                self._writer.writerow(self.header)

    def write(self, record: dict[str, Any]) -> None:
        self.start(record)
        if not record.keys() <= self._columns:
            raise ValueError(f"not columns of this CSV: {sorted(record.keys() - self._columns)}")
        self._writer.writerow([cell(record.get(k, "")) for k in self.header])
        self.rows += 1

    def flush(self) -> None:
        self.out.flush()


def to_csv(records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    write_csv(records, buffer)
    return buffer.getvalue()


def cell(value):
    """A value as the CSV writes it: floats exactly (``repr``), non-finite ones as ``nan``, ``inf``, ``-inf``."""
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    return value


def first_nonfinite(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first record with a non-finite value, or None."""
    if isinstance(records, RecordLog):
        return records.first_nonfinite()
    return next((r for r in records if r.get("nonfinite", 0) > 0), None)


def column(records, name: str) -> np.ndarray:
    """One column of a run's records (a list of records, a :class:`RecordLog` or a frame) as a float array."""
    if isinstance(records, RecordLog):
        return records.column(name)
    if isinstance(records, pd.DataFrame):
        return records[name].to_numpy(dtype=np.float64)
    return np.array([r[name] for r in records], dtype=np.float64)


def knobs_of(record: dict[str, Any]) -> dict[str, Any]:
    """The numeric settings in force at a record's step (its ``set:<key>`` columns)."""
    return {k[len(KNOB_PREFIX):]: v for k, v in record.items() if k.startswith(KNOB_PREFIX)}


def knob_changes(records) -> list[tuple[int, str, Any, Any]]:
    """``(step, key, old, new)`` for every knob whose value differs from the record before: the schedule of
    a run, as its records tell it (the page's markers and the CLI's ``--at`` both come from here). Takes
    records, a :class:`RecordLog` or a frame of records."""
    if isinstance(records, RecordLog):
        records = records.take(records.change_rows())
    if len(records) < 2:  # (also a run that has not started: no columns yet)
        return []
    if isinstance(records, pd.DataFrame):
        names = [c for c in records.columns if c.startswith(KNOB_PREFIX)]
        raw = {name: records[name].to_numpy().tolist() for name in names}  # numpy scalars -> int / float
    else:
        names = [c for c in (records[0] if len(records) else {}) if c.startswith(KNOB_PREFIX)]
        raw = {name: [r[name] for r in records] for name in names}
    steps = column(records, "step")
    changes = []
    for name in names:
        for i in (np.flatnonzero(_differs(np.asarray(raw[name], dtype=np.float64))) + 1).tolist():
            changes.append((int(steps[i]), name[len(KNOB_PREFIX):], raw[name][i - 1], raw[name][i]))
    return sorted(changes, key=lambda c: c[0])


def window(records, recent: int = 2000, older: int = 1000) -> pd.DataFrame:
    """A bounded selection of a run's records to draw, as a frame: every step of the last ``recent``, about
    ``older`` evenly spaced before them, and the records around the latest ``MARKED_CHANGES`` knob changes
    and the first non-finite value, so markers stay exact. Its cost does not grow with the history."""
    n = len(records)
    rows = range(n)
    columnar = hasattr(records, "change_rows")  # a RecordLog, or a CSV's rows (lossviz.runfiles.Rows)
    if n > recent + older:
        head = n - recent
        picked = set(range(0, head, max(1, head // older))) | set(range(head, n))
        if columnar:
            picked |= set(records.change_rows()[-2 * MARKED_CHANGES:]) | set(records.nonfinite_rows()[:1].tolist())
        rows = sorted(picked)
    if columnar:
        return records.frame(rows)
    return frame([records[i] for i in rows])


def frame(records) -> pd.DataFrame:
    """Records as a table (a frame passes through); a column mixing text and numbers (e.g. "" for "no NaN"
    and a step) becomes text."""
    if isinstance(records, pd.DataFrame):
        return records
    if isinstance(records, RecordLog):
        return records.frame(range(len(records)))
    df = pd.DataFrame.from_records(list(records))
    for name in df.columns[df.dtypes == object]:
        df[name] = df[name].astype(str)
    return df


def thinning(n: int, recent: int, kept: Sequence[int]) -> np.ndarray:
    """Which of ``n`` rows a bounded log keeps once it is full: every other row before the last ``recent``,
    always the first row and the rows ``kept`` (knob changes, the first non-finite one)."""
    keep = np.ones(n, bool)
    keep[1:max(n - recent, 0):2] = False
    keep[np.asarray(kept, dtype=np.int64)] = True
    return keep


def _differs(values: np.ndarray) -> np.ndarray:
    """For rows 1..n-1 of one knob's values: whether it differs from the row before (an empty knob, NaN, on both
    is no change)."""
    differs = values[1:] != values[:-1]
    if values.dtype.kind == "f":
        differs &= ~(np.isnan(values[1:]) & np.isnan(values[:-1]))
    return differs


def changed_rows(columns: Sequence[np.ndarray]) -> list[int]:
    """The rows where any of ``columns`` (knob values, one array per knob) differs from the row before, with the
    row before each (so a chart has the old value and the new one)."""
    n = len(columns[0]) if len(columns) else 0
    if n < 2:
        return []
    changed = np.zeros(n - 1, bool)
    for values in columns:
        changed |= _differs(values)
    starts = np.flatnonzero(changed) + 1
    return sorted(set(starts.tolist()) | set((starts - 1).tolist()))


def compact(arrays: Iterable[np.ndarray], keep: np.ndarray) -> int:
    """Move the rows ``keep`` marks (a mask over the first ``len(keep)`` rows) to the front of each array, in
    place; returns how many rows that is."""
    for array in arrays:
        kept = array[: len(keep)][keep]
        array[: len(kept)] = kept
    return int(keep.sum())


class RecordLog(Sequence):
    """A run's records, kept as columns (float32 values, the step, the non-finite place code, the knobs in
    force) and handed out as the same plain dicts the trainer yields.

    Memory is bounded: once it holds ``max_rows`` records, the ones before the last ``recent`` are thinned
    to every other one, always keeping the first record, the first non-finite one and every knob change.
    """

    def __init__(self, columns: Sequence[str] | None, knobs: Sequence[str],
                 decode: Callable[[int], tuple[str, str]] | None, int_knobs: Sequence[str] = (),
                 max_rows: int = MAX_ROWS, recent: int = RECENT_ROWS):
        self.knobs, self._int_knobs = list(knobs), set(int_knobs)
        self._max, self._recent = max_rows, recent
        self.columns: list[str] | None = None
        self.decode = decode
        self._steps = np.zeros(0, np.int64)
        self._values = np.zeros((0, 0), np.float32)
        self._codes = np.zeros(0, np.int32)
        self._knobs = np.zeros((0, len(self.knobs)), np.float64)
        self._n = 0
        self._csv: tuple = (None, "")  # (the log's state, its CSV text)
        self.thinned = 0  # records dropped to keep within max_rows
        if columns is not None:
            self.configure(columns, decode)

    def configure(self, columns: Sequence[str], decode: Callable[[int], tuple[str, str]]) -> None:
        """Name the value columns (known once the run's model is built; a waiting run has none yet)."""
        if self.columns is None:
            self.columns, self.decode = list(columns), decode
            self._values = np.zeros((0, len(self.columns)), np.float32)
    def __len__(self) -> int:
        return self._n

    @property
    def last_step(self) -> int:
        return int(self._steps[self._n - 1]) if self._n else 0

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(self._n)))
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self._record(index)

    def take(self, rows: Iterable[int]) -> list[dict[str, Any]]:
        return [self._record(i) for i in rows]

    def _record(self, i: int) -> dict[str, Any]:
        record: dict[str, Any] = {"step": int(self._steps[i])}
        for name, value in zip(self.columns, self._values[i].tolist()):
            if name == "nonfinite":
                record[name] = int(value)
                record["first_nonfinite"], record["nonfinite_in"] = self.decode(int(self._codes[i]))
            else:
                record[name] = value
        for name, value in zip(self.knobs, self._knobs[i].tolist()):
            record[KNOB_PREFIX + name] = int(value) if name in self._int_knobs else value
        return record

    def append(self, first_step: int, values: np.ndarray, codes: np.ndarray, knobs: Sequence[float]) -> None:
        """Add a chunk of consecutive steps from ``first_step`` on, all under the same knobs (the last
        ``len(values)`` rows)."""
        k = len(values)
        if self._n + k > self._max:
            self._thin()
        self._reserve(self._n + k)
        rows = slice(self._n, self._n + k)
        self._steps[rows] = np.arange(first_step, first_step + k)
        self._values[rows] = values
        self._codes[rows] = codes
        self._knobs[rows] = np.asarray(knobs, np.float64)
        self._n += k

    def csv(self) -> str:
        """The log as CSV text, built once per state of the log (a paused page asks for it at every rerun)."""
        version = (self._n, self.last_step, self.thinned)
        if self._csv[0] != version:
            self._csv = (version, to_csv(self))
        return self._csv[1]

    def _reserve(self, size: int) -> None:
        if size <= len(self._steps):
            return
        capacity = max(size, 2 * len(self._steps), 256)
        for name in ("_steps", "_values", "_codes", "_knobs"):
            old = getattr(self, name)
            grown = np.zeros((capacity,) + old.shape[1:], old.dtype)
            grown[: self._n] = old[: self._n]
            setattr(self, name, grown)

    def _thin(self) -> None:
        keep = thinning(self._n, self._recent, self.change_rows() + self.nonfinite_rows()[:1].tolist())
        kept = compact([self._steps, self._values, self._codes, self._knobs], keep)
        self.thinned += self._n - kept
        self._n = kept

    def frame(self, rows: Iterable[int]) -> pd.DataFrame:
        """The records of ``rows`` as a frame, built from the columns (no dict per record)."""
        rows = np.asarray(list(rows), dtype=np.int64)
        if self.columns is None:
            return pd.DataFrame()
        codes = self._codes[rows]
        table: dict[str, Any] = {"step": self._steps[rows]}
        for j, name in enumerate(self.columns):
            if name == "nonfinite":
                table[name] = self._values[rows, j].astype(np.int64)
                places = {int(c): self.decode(int(c)) for c in np.unique(codes)}
                table["first_nonfinite"] = [places[c][0] for c in codes.tolist()]
                table["nonfinite_in"] = [places[c][1] for c in codes.tolist()]
            else:
                table[name] = self._values[rows, j].astype(np.float64)
        for j, name in enumerate(self.knobs):
            values = self._knobs[rows, j]
            table[KNOB_PREFIX + name] = values.astype(np.int64) if name in self._int_knobs else values
        return pd.DataFrame(table)

    def column(self, name: str) -> np.ndarray:
        """One value column (float64) or ``step``."""
        if name == "step":
            return self._steps[: self._n].copy()
        if self.columns is None:
            return np.zeros(0)
        return self._values[: self._n, self.columns.index(name)].astype(np.float64)

    def nonfinite_rows(self) -> np.ndarray:
        if self.columns is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self._values[: self._n, self.columns.index("nonfinite")] > 0)

    def first_nonfinite(self) -> dict[str, Any] | None:
        rows = self.nonfinite_rows()
        return self._record(int(rows[0])) if len(rows) else None

    def change_rows(self) -> list[int]:
        """The rows whose knobs differ from the row before, with the row before each (old and new value)."""
        return changed_rows(list(self._knobs[: self._n].T))


def describe_first_nonfinite(records: Sequence[dict[str, Any]]) -> str | None:
    """In words, where the first non-finite value of a run appeared, or None for a finite run."""
    first = first_nonfinite(records)
    if first is None:
        return None
    where = {"loss": "in the loss", "gradient": f"in the gradient of {first['first_nonfinite']}",
             "weight": f"in the weight {first['first_nonfinite']} after the update"}
    place = where.get(first.get("nonfinite_in", ""), first.get("first_nonfinite", ""))
    return f"step {first['step']}, {place}"


def likely_cause(settings: dict[str, Any], records: Sequence[dict[str, Any]],
                 own: Callable[[dict[str, Any]], str | None] | None = None) -> str | None:
    """The setting that most likely produced the first non-finite value of a run, in words; ``own`` is the demo's
    explanation of its settings (``Demo.cause``: the naive BCE, an inverse MSE without epsilon), asked first after
    an overflowing update."""
    first = first_nonfinite(records)
    if first is None:
        return None
    bad = column(records, "nonfinite") > 0
    before = column(records, "grad_norm")[: int(np.argmax(bad))].tolist()
    grew = len(before) >= 2 and before[-1] > 100 * max(min(before), 1e-12)
    lr = settings.get("lr")
    if first.get("nonfinite_in") == "weight":
        return (f"the update itself overflowed: lr={lr} times a gradient of norm {before[-1] if before else '?'} "
                "left float32 range; lower lr or set clipnorm")
    explained = own(settings) if own is not None else None
    if explained:
        return explained
    if grew:
        return (f"the gradient norm grew from {min(before):.3g} to {before[-1]:.3g} before it: lr={lr} is too "
                "large for this loss; lower it or set clipnorm")
    if first.get("nonfinite_in") == "gradient":
        return f"the loss was finite but its gradient was not (in {first['first_nonfinite']}): a non-smooth point"
    return f"lr={lr} with this loss; try a smaller lr or gradient clipping"
