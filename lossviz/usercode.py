"""Your own code as a demo: a Python file with a loss (and optionally a model, data and metrics).

``load("path/to/file.py[:NAME]")`` imports the file (the operator's own code, named on the command line or in
``LOSSVIZ_CODE``; nothing a browser sends reaches here), finds the loss (the object ``NAME``, default ``loss``)
in any form ``model.compile(loss=...)`` takes (``lossforms``) and registers a demo of that name, with the loss's
numeric parameters as knobs.

It returns a per-sample tensor (averaged), a scalar, or a dict ``{term: tensor}`` (the total is their sum, and each
term gets the per-term gradient probe). ``model`` (a ``keras.Model`` or a function returning one), ``data``
(``data(seed)`` -> ``(x, y)`` or ``((x, y), (x_val, y_val))``, numpy arrays or lists or dicts of them, passed with
the shapes they have) and ``metrics`` (name -> ``fn(y_true, y_pred)``) are optional: without model and data, the
``custom`` demo's net and data are used (``task=binary``: y_pred is the probability; ``task=regression``: the
prediction).

A knob reaches the compiled step as a tensor, so changing it mid-run needs no retrace. Code that needs a Python
value there (``float(gamma)``, ``range(k)``, a depth, an ``if`` on it) is found when the loss is first traced: that
knob then shapes the graph (``Param.structural``, with the reason in its help), an int staying an int. Anything
wrong with the file is one :class:`CodeError` line naming the file, the line and what to fix.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import math
import re
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf
import keras
from keras import ops

from . import curves as drawn, data as builtin_data, demos, keras2, lossforms, nansource, settings as config
from .demos import custom
from .knobs import COMMON_KEYS, METRICS, TASK, TERM_GRADS, Param, SettingError, common

LIMITS = {"knobs": 16, "rows": 2_000_000}
_CUSTOM = custom.DEMO  # a file without model and data runs on the formula demo's net, data and metrics


class CodeError(SettingError):
    """A file that cannot be used: one line naming the file, the line and what to fix."""


is_file = config.is_file
label = config.file_label


def split(name: str) -> tuple[str, str]:
    """``"path.py:NAME"`` -> ``("path.py", "NAME")``; the object's name defaults to ``loss``."""
    path, _, obj = name.partition(":")
    return path, obj or "loss"


# ----------------------------------------------------------------------------- nested arrays <-> flat dicts


@dataclass(frozen=True)
class Nest:
    """How a structure of arrays (one array, a list, a dict) maps to the flat dict of named arrays lossviz keeps."""

    kind: str  # "array" | "list" | "dict"
    keys: tuple[str, ...]  # the flat names, in order
    inner: tuple[Any, ...] = ()  # the dict keys or nothing

    @classmethod
    def of(cls, value, prefix: str) -> "Nest":
        if isinstance(value, Mapping):
            inner = tuple(value)
            return cls("dict", tuple(f"{prefix}:{k}" for k in inner), inner)
        if isinstance(value, (list, tuple)):
            return cls("list", tuple(f"{prefix}{i}" for i in range(len(value))))
        return cls("array", (prefix,))

    def flatten(self, value) -> dict[str, Any]:
        if self.kind == "dict":
            return {k: value[i] for k, i in zip(self.keys, self.inner)}
        if self.kind == "list":
            return dict(zip(self.keys, value))
        return {self.keys[0]: value}

    def unflatten(self, flat: Mapping[str, Any]):
        if self.kind == "dict":
            return {i: flat[k] for k, i in zip(self.keys, self.inner)}
        if self.kind == "list":
            return [flat[k] for k in self.keys]
        return flat[self.keys[0]]


# ----------------------------------------------------------------------------- the file


def _frame_line(error: BaseException, path: Path) -> int | None:
    """The last line of ``path`` in the error's traceback (or its own line, for a syntax error)."""
    if isinstance(error, SyntaxError) and error.lineno:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return line


def _where(given: str, line: int | None) -> str:
    return f"{given}:{line}" if line else given


def explain(error: BaseException, given: str, path: Path, line: int | None = None) -> str:
    """One line for an error raised by the file's code: the file and line (``line`` when the error passed through
    none of the file's lines, e.g. a Keras loss the file names), and what to fix."""
    line = _where(given, _frame_line(error, path) or line)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    missing = keras2.missing_name(error)
    if missing:
        return f"{line}: {keras2.hint(missing)}"
    if isinstance(error, SyntaxError):
        return f"{line}: syntax error: {error.msg}"
    if isinstance(error, ImportError):
        return f"{line}: cannot import: {text}"
    return f"{line}: {type(error).__name__}: {text}"[:400]


def _import(given: str):
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise CodeError(f"{given}: no such file")
    name = "lossviz_code_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  (any error of the operator's file becomes one line)
        raise CodeError(explain(e, given, path)) from None
    finally:
        if sys.path and sys.path[0] == str(path.parent):
            sys.path.pop(0)
    sys.modules[name] = module
    return module, path


def _held(module) -> list[str]:
    """What a file defines that could be a loss: its own functions, classes and callable objects."""
    names = []
    for key, value in vars(module).items():
        if key.startswith("_") or inspect.ismodule(value):
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            if getattr(value, "__module__", None) == module.__name__:
                names.append(key)
        elif callable(value):
            names.append(key)
    return names


def _line_of(obj, path: Path) -> int | None:
    """The line where the file defines ``obj`` (a function or class of its own), or None."""
    inner = lossforms.unwrapped(obj)
    try:
        if Path(inspect.getsourcefile(inner)).resolve() != path:
            return None
        return inspect.getsourcelines(inner)[1]
    except (OSError, TypeError):
        return None


def _assigned_at(path: Path, name: str) -> int | None:
    """The line of the file's last top-level statement binding ``name`` (``loss = keras.losses.Huber()``)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    found = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if name in names or getattr(node, "name", None) == name:
            found = node.lineno
    return found


def _loss_of(obj, given: str, name: str) -> lossforms.Loss:
    """The file's loss in its form (``lossforms``), or one line naming the file and the line."""
    try:
        return lossforms.form_of(obj, name)
    except lossforms.FormError as e:
        path = Path(given).resolve()
        raise CodeError(f"{_where(given, _line_of(obj, path) or _assigned_at(path, name))}: {e}") from None
    except Exception as e:  # noqa: BLE001  (a factory of the file that raises)
        raise CodeError(explain(e, given, Path(given).resolve())) from None


# ----------------------------------------------------------------------------- data and model


def _arrays(value, what: str, given: str):
    """Numpy float32 arrays in the same structure (an array, a list, a dict), with the shapes they have: ``fit``
    passes a (n,) target to the loss as (n,)."""
    if isinstance(value, Mapping):
        return {k: _arrays(v, what, given) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and not np.isscalar(value[0]) and np.ndim(value[0]) > 0:
        return [_arrays(v, what, given) for v in value]
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise CodeError(f"{given}: data(): {what} is not numbers ({type(value).__name__})") from None
    if array.ndim == 0:
        raise CodeError(f"{given}: data(): {what} is a single number, not an array with one row per sample")
    return array


def _split_data(found, given: str):
    """``(x, y)`` or ``((x, y), (x_val, y_val))`` -> (x, y, validation or None)."""
    if not isinstance(found, (tuple, list)) or len(found) != 2:
        raise CodeError(f"{given}: data(seed) must return (x, y) or ((x, y), (x_val, y_val)), got "
                        f"{type(found).__name__}")
    first, second = found
    if all(isinstance(part, tuple) and len(part) == 2 and _looks_like_pair(part) for part in found):
        return first[0], first[1], second
    return first, second, None


def _looks_like_pair(value) -> bool:
    """(x, y) where both have the same number of rows: the validation form's halves."""
    try:
        rows = {len(np.asarray(leaf)) for part in value for leaf in _leaves(part)}
    except TypeError:
        return False
    return len(rows) == 1


def _leaves(value):
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)) and value and np.ndim(value[0]) > 0:
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _dataset(x, y, x_nest: Nest, y_nest: Nest, given: str) -> builtin_data.Dataset:
    inputs, targets = x_nest.flatten(x), y_nest.flatten(y)
    rows = {k: len(v) for k, v in {**inputs, **targets}.items()}
    if len(set(rows.values())) != 1:
        raise CodeError(f"{given}: data(): the arrays have different numbers of rows: "
                        + ", ".join(f"{k} {n}" for k, n in rows.items()))
    n = next(iter(rows.values()))
    if not 1 <= n <= LIMITS["rows"]:
        raise CodeError(f"{given}: data(): {n} rows; lossviz takes 1 to {LIMITS['rows']}")
    return builtin_data.Dataset(inputs, targets)


@dataclass
class UserCode:
    """A loaded file: its loss, model, data and metrics, and the demo built from them."""

    name: str  # as given: "path.py" or "path.py:NAME"
    path: Path
    loss: lossforms.Loss
    model: Callable[[], keras.Model] | None
    data: Callable[[int], Any] | None
    metrics: dict[str, Callable]
    x_nest: Nest | None = None
    y_nest: Nest | None = None
    out_nest: Nest | None = None  # the model's outputs: y_pred, y_pred0..., or y_pred:<key> (learnt by ``_check``)
    terms: tuple[str, ...] = ()
    static: dict[str, str] = field(default_factory=dict)  # knob -> why it needs a Python value
    obj: Any = None  # the object the file names as its loss
    line: int | None = None  # where the file defines it
    _data_cache: dict = field(default_factory=dict)

    @property
    def note(self) -> str:
        """What of the loss could not become a knob, and why, in one line (or nothing)."""
        return f"{self.given}: {self.loss.note}" if self.loss.note else ""

    @property
    def own_model(self) -> bool:
        return self.model is not None

    # -- data -------------------------------------------------------------------------------------------

    def datasets(self, seed: int, task: str = "binary") -> tuple[builtin_data.Dataset, builtin_data.Dataset | None]:
        """(training data, validation data or None) of a seed."""
        if self.data is None:
            return _CUSTOM.make_data({"task": task}, seed), None
        if seed not in self._data_cache:
            try:
                found = self.data(seed)
            except Exception as e:  # noqa: BLE001
                raise CodeError(explain(e, self.given, self.path)) from None
            x, y, validation = _split_data(found, self.given)
            x, y = _arrays(x, "x", self.given), _arrays(y, "y", self.given)
            train = _dataset(x, y, self.x_nest, self.y_nest, self.given)
            val = None
            if validation is not None:
                vx, vy = _arrays(validation[0], "x_val", self.given), _arrays(validation[1], "y_val", self.given)
                val = _dataset(vx, vy, self.x_nest, self.y_nest, self.given)
            if len(self._data_cache) > 4:
                self._data_cache.clear()
            self._data_cache[seed] = (train, val)
        return self._data_cache[seed]

    @property
    def given(self) -> str:
        return self.name.partition(":")[0]

    # -- the graph --------------------------------------------------------------------------------------

    def build(self, settings: Mapping[str, Any]) -> keras.Model:
        return _CUSTOM.build(settings) if self.model is None else self.model()

    def call(self, model, inputs: Mapping[str, Any], training: bool) -> dict[str, Any]:
        """The model on a flat dict of inputs; its outputs as a flat dict."""
        if self.model is None:
            return model(inputs, training=training)
        return self.out_nest.flatten(model(self.x_nest.unflatten(inputs), training=training))

    def y_pred(self, out: Mapping[str, Any], settings: Mapping[str, Any]):
        if self.model is None:
            return out["probability"] if settings.get("task", "binary") == "binary" else out["y"]
        return self.out_nest.unflatten(out)

    def y_true(self, targets: Mapping[str, Any]):
        if self.model is None:
            return targets["y"]
        return self.y_nest.unflatten(targets)

    def knob_values(self, hp: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """The knobs for a call: tensors from the step's numbers, Python numbers (of the knob's kind) for the
        static ones."""
        return {k: (lossforms.plain(settings[k]) if k in self.static else hp[k]) for k in self.loss.knobs}

    def compute(self, out, targets, hp, settings):
        """(dict of scalar terms, total loss) of a batch."""
        found = self.loss.compute(self.y_true(targets), self.y_pred(out, settings), self.knob_values(hp, settings))
        for value in (found.values() if isinstance(found, Mapping) else (found,)):
            if not (tf.is_tensor(value) or isinstance(value, (np.ndarray, keras.Variable))):
                raise CodeError(f"{self.given}: the loss returns {type(value).__name__}: it must return a tensor "
                                f"(per sample, or a scalar) or a dict of tensors (one per term)")
        if isinstance(found, Mapping):
            terms = {str(k): ops.mean(v) for k, v in found.items()}
            total = sum(terms.values())
            return terms, ops.reshape(total, ())
        return {}, ops.mean(found)

    def metric_values(self, out, targets, settings) -> dict[str, Any]:
        if self.metrics:
            return {name: ops.mean(fn(self.y_true(targets), self.y_pred(out, settings)))
                    for name, fn in self.metrics.items()}
        if self.model is None:  # the custom demo's metrics, by task
            return custom.metrics(demos.Context(None, out, {}, targets, {}, {}, settings))
        return {}

    def symbolic_outputs(self, model) -> dict[str, Any] | None:
        """The model's outputs as symbolic tensors under the flat names the loss reads (the check-up's heads)."""
        try:
            out = model.output
        except (AttributeError, ValueError):
            return None
        if self.own_model:
            return self.out_nest.flatten(out)
        return dict(out) if isinstance(out, Mapping) else None

    # -- the page ---------------------------------------------------------------------------------------

    def page(self) -> dict[str, Any]:
        """The texts of the file's page (``demos.Page``)."""
        knobs = ", ".join(f"`{k}`" + (" (needs a Python value: it shapes the graph)" if k in self.static else "")
                          for k in self.loss.knobs) or "none"
        terms = ", ".join(f"`{t}`" for t in self.terms)
        return {"title": label(self.name), "nav_title": label(self.name), "icon": ":material/code:",
                "problem": (f"Your own code, `{self.name}`: the loss is a {self.loss.form}"
                            + (f" with the terms {terms}" if terms else "") + f"; its knobs: {knobs}. "
                            + ("Its model and data are the file's own." if self.own_model else
                               "It runs on the formula page's net and data (`task`: binary or regression).")
                            + " The file was named when the server started; this page cannot load another."),
                "view": None if self.own_model else custom.view}

    def curves(self, settings: Mapping[str, Any]) -> list[drawn.Curve]:
        """The loss (the sum of its terms) over the prediction, on the formula demo's net: over p for y = 1 and
        y = 0, or over the prediction for y = 0.5 (regression). None for its own model, or a loss that reduces the
        batch to one number."""
        if self.own_model or self.loss.per_sample is None:
            return []
        knobs = {k: tf.constant(float(settings[k]), tf.float32) for k in self.loss.knobs}
        per_sample_loss = self.loss.per_sample(self.knob_values(knobs, settings))

        def fn(y: float):
            def per_sample(x):
                col = x[:, None]
                found = per_sample_loss(tf.fill(tf.shape(col), y), col)
                values = found.values() if isinstance(found, Mapping) else [found]
                return sum(tf.reshape(tf.convert_to_tensor(v, tf.float32), (-1,)) for v in values)
            return per_sample

        if settings.get("task", "binary") == "binary":
            x, x_label, ys = drawn.probability_grid(), "predicted probability p", (1.0, 0.0)
        else:
            x, x_label, ys = np.linspace(-0.5, 1.5, 401), "prediction (target 0.5)", (0.5,)
        try:
            found = [drawn.curve(f"y = {y:g}", x, fn(y), x_label) for y in ys]
        except (ValueError, TypeError, tf.errors.InvalidArgumentError):
            return []
        return found if all(c.y.shape == x.shape for c in found) else []


# ----------------------------------------------------------------------------- checking a file by tracing it


def _check(code: UserCode, task: str) -> None:
    """Trace the loss once on four rows of seed 0's data, with the knobs as tensors: learn its terms, the knobs
    that need Python values, how a Loss instance takes its knobs, and refuse what cannot train (a raise, a shape
    mismatch, a wrong return). A single loss that fails on a multi-output model's whole structure is applied to
    each output, as Keras' ``compile`` does."""
    out, targets = _first_rows(code, task)
    error = _find_static(code, out, targets, task)
    if error is not None and not code.loss.outputs:
        keys = _common_keys(code)
        if keys:
            single = code.loss
            code.loss = lossforms.each_output(single, keys)
            if _find_static(code, out, targets, task) is not None:
                code.loss = single
            else:
                error = None
    if error is not None:
        raise CodeError(error)
    if isinstance(code.obj, keras.losses.Loss):
        code.loss = _instance_knobs(code, out, targets, task)
    _name_outputs(code)
    settings = {"task": task, **code.loss.knobs}
    try:
        terms, _ = code.compute(out, targets, {k: tf.constant(v, tf.float32) for k, v in code.loss.knobs.items()},
                                settings)
        if code.metrics:
            code.metric_values(out, targets, settings)
    except SettingError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CodeError(_explain_call(e, code, "the loss on the first batch")) from None
    code.terms = tuple(terms)


def _first_rows(code: UserCode, task: str):
    """The model's outputs and the targets of four rows of seed 0's data, as flat dicts of tensors."""
    train, _ = code.datasets(0, task)
    rows = train.take(np.arange(min(4, len(train))))
    model = code.build({"task": task})
    inputs = {k: tf.constant(v) for k, v in rows.inputs.items()}
    try:
        out = model(inputs if code.model is None else code.x_nest.unflatten(inputs), training=False)
    except Exception as e:  # noqa: BLE001
        raise CodeError(_explain_call(e, code, "the model on the data's x")) from None
    if code.model is not None:  # how its outputs reach the loss
        code.out_nest = Nest.of(out, "y_pred")
        out = code.out_nest.flatten(out)
    return out, {k: tf.constant(v) for k, v in rows.targets.items()}


def _find_static(code: UserCode, out, targets, task: str) -> str | None:
    """Set ``code.static``: the knobs the loss needs as Python values (each with the error it gives as a tensor).
    Returns the error line when the loss fails even with every knob a Python value, else None."""
    settings = {"task": task, **code.loss.knobs}
    static: dict[str, str] = {}
    error = _trace(code, out, targets, settings, static)
    if error is None:
        code.static = {}
        return None
    for knob in code.loss.knobs:  # one knob at a time a Python value, until the loss traces
        static[knob] = error[1]
        if _trace(code, out, targets, settings, static) is None:
            break
    else:
        code.static = {}
        return error[0]
    for knob in list(static):  # keep only those needed, each with its own reason
        static.pop(knob)
        own = _trace(code, out, targets, settings, static)
        if own is not None:
            static[knob] = own[1]
    code.static = static
    return None


def _common_keys(code: UserCode) -> list | None:
    """The outputs of a multi-output model whose targets have the same structure, or None."""
    out, y = code.out_nest, code.y_nest
    if not code.own_model or out is None or y is None or out.kind == "array" or out.kind != y.kind:
        return None
    if out.kind == "dict":
        return list(out.inner) if set(out.inner) == set(y.inner) else None
    return list(range(len(out.keys))) if len(out.keys) == len(y.keys) else None


def _name_outputs(code: UserCode) -> None:
    """A loss per output of a list: each term named as the model names its output."""
    parts = code.loss.outputs
    if not parts or not all(isinstance(k, int) for k in parts) or not code.own_model:
        return
    names = list(getattr(code.build({}), "output_names", None) or [])
    if len(names) == len(code.out_nest.keys) and len(set(names)) == len(names):
        code.loss.labels = {k: str(names[k]) for k in parts}


def _instance_knobs(code: UserCode, out, targets, task: str) -> lossforms.Loss:
    """How a Loss instance takes its knobs: set on a copy, unless a constructor derives its state from a knob (then
    the copy's loss differs from the rebuilt one's: the instance is rebuilt, or kept as given when even rebuilding
    it from its own values changes its loss)."""
    loss, obj = code.loss, code.obj
    y_true, y_pred = code.y_true(targets), code.y_pred(out, {"task": task})

    def value(made) -> float:
        return float(ops.mean(made(y_true, y_pred)))

    try:
        original = value(obj)
    except Exception:  # noqa: BLE001  (the trace has said what is wrong, if anything)
        return loss
    for key, v in loss.knobs.items():
        if not isinstance(v, float):
            continue
        moved = v * 0.5 if v else 0.5
        try:
            copied = value(lossforms.with_knobs(obj, {key: moved}))
            rebuilt, again = value(lossforms.rebuilt(obj, {key: moved})), value(lossforms.rebuilt(obj, {}))
        except Exception:  # noqa: BLE001  (no constructor call to compare with)
            continue
        if not all(math.isfinite(x) for x in (copied, rebuilt, again)) or _close(copied, rebuilt):
            continue
        if _close(again, original):
            return lossforms.rebuilding(loss, obj)
        return lossforms.as_given(loss, obj, f"its constructor derives its state from {key}, and building it again "
                                             f"from the values it holds gives another loss")
    return loss


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * (1.0 + abs(b))


def _trace(code: UserCode, out, targets, settings, static) -> tuple[str, str] | None:
    """None when the loss traces in a graph with the non-static knobs as tensors; else (the error line, a reason
    to show beside a knob)."""
    code.static = dict(static)
    knobs = [k for k in code.loss.knobs if k not in static]

    def traced(*values):
        hp = dict(zip(knobs, values))
        return code.compute(out, targets, hp, settings)[1]

    first = None
    for autograph in (False, True):  # without autograph the error keeps the file's lines; code with an `if` on a
        try:                         # knob traces with it
            tf.function(traced, autograph=autograph).get_concrete_function(
                *[tf.TensorSpec((), tf.float32) for _ in knobs])
            return None
        except SettingError as e:
            return str(e), str(e)
        except Exception as e:  # noqa: BLE001
            first = first or e
    return _explain_call(first, code, "the loss"), _reason(first, code)


def _reason(error: BaseException, code: UserCode) -> str:
    """Why a knob must be a Python value, in a few words, with the file's line: ``focal.py:9: a Python bool test``."""
    text = str(error)
    if isinstance(error, tf.errors.OperatorNotAllowedInGraphError) or "as a Python `bool`" in text:
        why = "a Python bool test"
    elif re.search(r"interpreted as an integer|expected type of int|DataType float|must be an integer", text):
        why = "used as an int (a shape, depth, axis, count or range)"
    elif re.search(r"must be real number|SymbolicTensor.*(float|int)\(\)|__float__|__index__", text):
        why = "a Python number (math.*, float(), int())"
    else:
        why = (text.strip().splitlines() or [""])[0][:80]
    line = _frame_line(error, code.path) or code.line
    return f"{code.path.name}{f':{line}' if line else ''}: {type(error).__name__}: {why}"


def _explain_call(error: BaseException, code: UserCode, what: str) -> str:
    if isinstance(error, SettingError):
        return str(error)
    line = explain(error, code.given, code.path, code.line)
    if isinstance(error, (ValueError, tf.errors.InvalidArgumentError)) and "shape" in str(error).lower():
        return f"{line} (calling {what}: a shape mismatch between the model, the data and the loss)"
    return f"{line} (calling {what})"


# ----------------------------------------------------------------------------- loading and registering

_LOADED: dict[str, UserCode] = {}
_LOCK = threading.Lock()


def load(name: str) -> UserCode:
    """The file's code, loaded once per process, with its demo registered under ``name``."""
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = _load(name)
        return _LOADED[name]


def _load(name: str) -> UserCode:
    given, obj_name = split(name)
    module, path = _import(given)
    if obj_name not in vars(module):
        held = _held(module)
        raise CodeError(f"{given}: no object named {obj_name!r}; the file holds: {', '.join(held) or 'nothing usable'}"
                        + ("" if obj_name != "loss" else f" (pick one with {given}:NAME)"))
    obj = vars(module)[obj_name]
    loss = _loss_of(obj, given, obj_name)
    if len(loss.knobs) > LIMITS["knobs"]:
        raise CodeError(f"{given}: the loss has {len(loss.knobs)} numeric defaults; lossviz takes up to "
                        f"{LIMITS['knobs']} knobs")
    clash = [k for k in loss.knobs if k in COMMON_KEYS]
    if clash:
        raise CodeError(f"{_where(given, _line_of(obj, path))}: the knob {clash[0]} is also a setting "
                        f"of every run: give it another name")
    model, data_fn, metrics = (vars(module).get(k) for k in ("model", "data", "metrics"))
    if (model is None) != (data_fn is None):
        raise CodeError(f"{given}: the file has {'model' if model is not None else 'data'} but no "
                        f"{'data' if model is not None else 'model'}: give both, or neither (lossviz's own)")
    if model is not None and not (isinstance(model, keras.Model) or callable(model)):
        raise CodeError(f"{given}: model is a {type(model).__name__}: give a keras.Model or a function returning one")
    if data_fn is not None and not callable(data_fn):
        raise CodeError(f"{given}: data is a {type(data_fn).__name__}: give a function data(seed)")
    if metrics is not None and not (isinstance(metrics, Mapping) and all(callable(f) for f in metrics.values())):
        raise CodeError(f"{given}: metrics must be a dict of name -> fn(y_true, y_pred)")
    code = UserCode(name, path, loss, _model_factory(model, given, path) if model is not None else None,
                    data_fn, dict(metrics or {}), obj=obj, line=_line_of(obj, path) or _assigned_at(path, obj_name))
    if data_fn is not None:
        try:
            found = data_fn(0)
        except Exception as e:  # noqa: BLE001
            raise CodeError(explain(e, given, path)) from None
        x, y, _ = _split_data(found, given)
        code.x_nest, code.y_nest = Nest.of(_arrays(x, "x", given), "x"), Nest.of(_arrays(y, "y", given), "y")
    _check(code, "binary")
    _register(code)
    return code


def _model_factory(model, given: str, path: Path) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        try:
            made = model if isinstance(model, keras.Model) else model()
        except Exception as e:  # noqa: BLE001
            raise CodeError(explain(e, given, path)) from None
        if not isinstance(made, keras.Model):
            raise CodeError(f"{given}: model() returns {type(made).__name__}, not a keras.Model")
        return made
    return build


def _register(code: UserCode) -> None:
    """The file's demo, with its knobs, under its name."""
    knob_params = tuple(
        Param(k, v, "int" if isinstance(v, int) else "float", "an integer" if isinstance(v, int) else "a finite number",
              structural=k in code.static,
              help=(f"needs a Python value ({code.static[k]}): changing it builds another step"
                    if k in code.static else "a knob of your loss"))
        for k, v in code.loss.knobs.items())
    task = () if code.own_model else (TASK,)
    probe = (TERM_GRADS,) if len(code.terms) > 1 else ()
    if code.metrics:
        metrics, main = tuple(code.metrics), next(iter(code.metrics))
    elif code.own_model:
        metrics, main = (), "loss"
    else:  # the formula demo's metrics, by task
        metrics, main = custom.metric_names, custom.DEMO.main_metric
    demos.register(demos.Demo(
        name=code.name,
        build=code.build,
        make_data=lambda s, seed: code.datasets(seed, s.get("task", "binary"))[0],
        make_eval=lambda s, seed: code.datasets(seed, s.get("task", "binary"))[1],
        terms=lambda ctx: code.compute(ctx.out, ctx.targets, ctx.hp, ctx.settings),
        metrics=lambda ctx: code.metric_values(ctx.out, ctx.targets, ctx.settings),
        term_names=code.terms,
        metric_names=metrics,
        params=(*common(lr=1e-3), *task, *knob_params, *probe, *((METRICS,) if metrics else ())),
        main_metric=main,
        compare=(next(iter(code.loss.knobs), "lr"), {}),
        note=code.note,
        metrics_on_eval=True,
        call=code.call,
        own_initializers=code.own_model,
        symbolic_outputs=code.symbolic_outputs,
        page=demos.Page(**code.page()),
        diagnose=nansource.nan_source,
        curves=code.curves,
        module=__name__,
    ))
