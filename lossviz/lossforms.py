"""The forms a loss of your own code takes, and how lossviz calls each with its knobs.

Whatever ``model.compile(loss=...)`` takes is a loss here (Keras 3's ``compile_utils`` and
``losses.LossFunctionWrapper`` are the reference):

- a function ``loss(y_true, y_pred, gamma=2.0, ...)``, also behind ``tf.function``, ``functools.wraps`` or
  ``functools.partial`` (the signature behind the wrapper gives the knobs);
- a factory whose parameters all have defaults, returning ``fn(y_true, y_pred)``;
- a class with ``__init__(self, <defaults>)`` and ``__call__(self, y_true, y_pred)``;
- a ``keras.losses.Loss`` subclass (built with the knobs) or instance (the constructor's parameters read back from
  the instance's attributes of the same name, set on a copy; see :func:`_instance`);
- a Keras loss name (``"huber"``), and a dict or list of any of these, one per output.

Every numeric parameter is a knob: a float stays a float, an int an int. A function is called with Keras'
rule for targets one rank off the predictions (``same_rank``), a ``Loss`` through its own ``__call__``, so the
loss sees what it sees in ``model.fit``.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import keras
from keras import ops

NOT_KNOBS = {"name", "reduction", "dtype"}  # a Loss's constructor arguments that are never knobs


class FormError(ValueError):
    """The object cannot be a loss; the message says why (the caller adds the file and line)."""


def numeric(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def plain(value) -> float | int:
    """A knob's value as a Python number of its own kind (an int default stays an int)."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def knobs_of(pairs) -> dict[str, float | int]:
    """The numeric values among ``(name, value)`` pairs, as knobs; a non-finite one is refused."""
    found = {}
    for name, value in pairs:
        if not numeric(value):
            continue
        if not math.isfinite(float(value)):
            raise FormError(f"{name}={value} is not a finite number: give the knob a finite default")
        found[name] = plain(value)
    return found


def _defaults(signature: inspect.Signature, skip: int) -> dict[str, float | int]:
    """The numeric keyword defaults of a signature, after its first ``skip`` parameters."""
    return knobs_of((p.name, p.default) for p in list(signature.parameters.values())[skip:]
                    if p.default is not inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def same_rank(y_true, y_pred):
    """Keras' rule for a function loss (``LossFunctionWrapper``): a target one rank above a prediction whose last
    axis is 1, or one rank below, is squeezed or expanded on its last axis; structures are matched leaf by leaf."""
    if isinstance(y_pred, Mapping) and isinstance(y_true, Mapping) and set(y_pred) == set(y_true):
        pairs = {k: same_rank(y_true[k], y_pred[k]) for k in y_pred}
        return {k: t for k, (t, _) in pairs.items()}, {k: p for k, (_, p) in pairs.items()}
    if isinstance(y_pred, (list, tuple)) and isinstance(y_true, (list, tuple)) and len(y_pred) == len(y_true):
        pairs = [same_rank(t, p) for t, p in zip(y_true, y_pred)]
        return [t for t, _ in pairs], [p for _, p in pairs]
    if isinstance(y_pred, (Mapping, list, tuple)) or isinstance(y_true, (Mapping, list, tuple)):
        return y_true, y_pred
    t, p = len(y_true.shape), len(y_pred.shape)
    if t == p + 1 and y_true.shape[-1] == 1:
        return (y_true, ops.expand_dims(y_pred, -1)) if p == 1 else (ops.squeeze(y_true, -1), y_pred)
    if p == t + 1 and y_pred.shape[-1] == 1:
        return (ops.expand_dims(y_true, -1), y_pred) if t == 1 else (y_true, ops.squeeze(y_pred, -1))
    return y_true, y_pred


@dataclass
class Loss:
    """The loss of a file, whatever its form.

    ``make(knobs)`` gives ``fn(y_true, y_pred)`` as ``model.fit`` would call it (reduced or not); ``per_sample``,
    where the form has one, the unreduced values (for curves over a prediction). ``outputs``: a loss per output
    (a dict or list in the file), each a :class:`Loss` whose knobs are named ``<output>.<knob>`` here."""

    form: str
    knobs: dict[str, float | int]
    make: Callable[[Mapping[str, Any]], Callable]
    per_sample: Callable[[Mapping[str, Any]], Callable] | None = None
    note: str = ""  # what could not become a knob, and why: one line for the page and the CLI
    outputs: dict[Any, "Loss"] = field(default_factory=dict)
    shared: bool = False  # the outputs share the knobs (one loss applied to each output)
    labels: dict[Any, str] = field(default_factory=dict)  # an output's term name (default: its key)

    def compute(self, y_true, y_pred, knobs: Mapping[str, Any]):
        """The loss of a batch: a tensor (per sample or reduced), or a dict of terms (one per output)."""
        if self.outputs:
            return {self.labels.get(key, str(key)): ops.mean(part.compute(
                y_true[key], y_pred[key], knobs if self.shared else _own(knobs, key)))
                for key, part in self.outputs.items()}
        return self.make(knobs)(y_true, y_pred)


def _own(knobs: Mapping[str, Any], key) -> dict[str, Any]:
    prefix = f"{key}."
    return {k[len(prefix):]: v for k, v in knobs.items() if k.startswith(prefix)}


def form_of(obj, name: str) -> Loss:
    """The :class:`Loss` of ``obj`` (the object the file names ``name``); raises :class:`FormError`."""
    if isinstance(obj, str):
        try:
            obj = keras.losses.get(obj)
        except (ValueError, TypeError):
            raise FormError(f"{name} = {obj!r} is not a Keras loss name (see keras.losses)") from None
    if isinstance(obj, (Mapping, list, tuple)):
        return _per_output(obj, name)
    obj = _unwrap(obj)
    if isinstance(obj, keras.losses.Loss):
        return _instance(obj)
    if inspect.isclass(obj):
        return _class(obj, name)
    if inspect.isfunction(obj) or inspect.ismethod(obj) or isinstance(obj, functools.partial) or _wrapped(obj):
        return _function(obj, name)
    if callable(obj):
        return Loss("callable object", {}, lambda kn: _called(obj))
    raise FormError(f"{name} is a {type(obj).__name__}, not a function, a class or a keras Loss")


def _unwrap(obj):
    """The Python function behind ``tf.function`` (its Python body traces into lossviz's own compiled step, so its
    lines and knobs are the file's)."""
    while callable(getattr(obj, "python_function", None)) and hasattr(obj, "get_concrete_function"):
        obj = obj.python_function
    return obj


def unwrapped(obj):
    """The innermost function of a wrapped one (for its source line): through ``tf.function``, ``functools.wraps``
    and ``functools.partial``."""
    for _ in range(16):
        inner = _unwrap(obj)
        inner = inner.func if isinstance(inner, functools.partial) else getattr(inner, "__wrapped__", inner)
        if inner is obj:
            return obj
        obj = inner
    return obj


def _wrapped(obj) -> bool:
    return callable(obj) and hasattr(obj, "__wrapped__")


def _signature(obj, name: str) -> inspect.Signature:
    try:
        return inspect.signature(obj)  # follows functools.wraps' __wrapped__, and binds a partial's arguments
    except (TypeError, ValueError):
        raise FormError(f"{name}: its signature cannot be read") from None


def _accepts(obj, keys) -> bool:
    """Whether calling ``obj`` itself (not what it wraps) takes these keyword arguments."""
    try:
        own = inspect.signature(obj, follow_wrapped=False)
    except (TypeError, ValueError):
        return False
    params = own.parameters.values()
    return any(p.kind == p.VAR_KEYWORD for p in params) or set(keys) <= {p.name for p in params}


def _function(obj, name: str) -> Loss:
    signature = _signature(obj, name)
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(positional) >= 2:
        knobs = _defaults(signature, 2)
        note = ""
        if knobs and not _accepts(obj, knobs):  # a wrapper that does not pass keywords on
            note = (f"{name}'s wrapper takes no keyword arguments, so its defaults ({', '.join(knobs)}) are used "
                    f"as they are, not as knobs")
            knobs = {}
        call = lambda kn: lambda t, p: obj(*same_rank(t, p), **kn)  # noqa: E731
        return Loss("function", knobs, call, call, note)
    if not positional:
        knobs = _defaults(signature, 0)
        made = obj(**knobs)
        if not callable(made):
            raise FormError(f"{name}() returns {type(made).__name__}, not a function: a loss is {name}(y_true, "
                            f"y_pred, ...) or a factory returning fn(y_true, y_pred)")
        if isinstance(made, keras.losses.Loss):
            return _keras_loss("factory", knobs, lambda kn: obj(**kn))
        call = lambda kn: _called(obj(**kn))  # noqa: E731
        return Loss("factory", knobs, call, call)
    raise FormError(f"{name} takes one argument without a default: a loss is {name}(y_true, y_pred, ...) or a "
                    f"factory whose parameters all have defaults")


def _called(fn):
    return lambda t, p: fn(*same_rank(t, p))


def _unreduced(loss: keras.losses.Loss) -> Callable:
    """A Keras Loss per sample: its ``call`` (a ``LossFunctionWrapper`` applies Keras' rank rule there)."""
    return lambda t, p: loss.call(ops.convert_to_tensor(t), ops.convert_to_tensor(p))


def _keras_loss(form: str, knobs, build: Callable[[Mapping[str, Any]], keras.losses.Loss], note: str = "") -> Loss:
    """A form whose knobs give a Keras Loss: called through its ``__call__`` as ``fit`` calls it, per sample through
    its ``call``."""
    def per_sample(kn):
        return _unreduced(build(kn))
    return Loss(form, knobs, build, per_sample, note)


def _class(obj, name: str) -> Loss:
    knobs = _defaults(inspect.signature(obj.__init__), 1)
    if issubclass(obj, keras.losses.Loss):
        return _keras_loss("keras Loss subclass", knobs, lambda kn: obj(**kn))
    if "__call__" not in vars(obj) and not any("__call__" in vars(c) for c in obj.__mro__[1:-1]):
        raise FormError(f"class {name} has no __call__(self, y_true, y_pred)")
    call = lambda kn: _called(obj(**kn))  # noqa: E731
    return Loss("class", knobs, call, call)


# ----------------------------------------------------------------------------- a Loss instance

_MISSING = object()


def _read(obj: keras.losses.Loss, key: str):
    """A constructor argument's value as the instance holds it: a ``LossFunctionWrapper``'s keyword arguments of its
    function, or the attribute of that name (or with a leading underscore)."""
    fn_kwargs = getattr(obj, "_fn_kwargs", None)
    if isinstance(fn_kwargs, dict) and key in fn_kwargs:
        return fn_kwargs[key]
    own = vars(obj)
    for attr in (key, f"_{key}"):
        if attr in own:
            return own[attr]
    return _MISSING


def constructor_values(obj: keras.losses.Loss) -> tuple[dict[str, Any], list[str]]:
    """(the instance's values of its constructor's parameters, the numeric ones it does not hold by name)."""
    values, hidden = {}, []
    for p in list(inspect.signature(type(obj).__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in NOT_KNOBS:
            continue
        found = _read(obj, p.name)
        if found is _MISSING:
            if p.default is p.empty or numeric(p.default):
                hidden.append(p.name)
            continue
        values[p.name] = found
    return values, hidden


def with_knobs(obj: keras.losses.Loss, knobs: Mapping[str, Any]) -> keras.losses.Loss:
    """A shallow copy of the instance holding ``knobs`` where the instance holds them (see :func:`_read`). Not
    ``copy.copy``: Keras objects copy through their serialisation, which a class of a file cannot take."""
    new = object.__new__(type(obj))
    new.__dict__.update(vars(obj))
    fn_kwargs = getattr(obj, "_fn_kwargs", None)
    if isinstance(fn_kwargs, dict):
        new._fn_kwargs = {**fn_kwargs, **{k: v for k, v in knobs.items() if k in fn_kwargs}}
    own = vars(obj)
    for key, value in knobs.items():
        for attr in (key, f"_{key}"):
            if attr in own:
                setattr(new, attr, value)
                break
    return new


def rebuilt(obj: keras.losses.Loss, knobs: Mapping[str, Any]) -> keras.losses.Loss:
    """The instance built again by its constructor, from the values it holds with ``knobs`` changed."""
    values, _ = constructor_values(obj)
    return type(obj)(**{**values, **knobs})


def _instance(obj: keras.losses.Loss) -> Loss:
    values, hidden = constructor_values(obj)
    knobs = knobs_of(values.items())
    note = ""
    if hidden:
        note = (f"the {type(obj).__name__} instance does not hold {', '.join(hidden)} under that name, so it is used "
                f"as given for {'it' if len(hidden) == 1 else 'them'} (no knob)")
    return _keras_loss("keras Loss instance", knobs, lambda kn: with_knobs(obj, kn), note)


def rebuilding(loss: Loss, obj: keras.losses.Loss) -> Loss:
    """The instance's loss with its knobs applied by building it again (a constructor that derives its state from
    them: setting the attribute on a copy would change nothing)."""
    return _keras_loss(loss.form, loss.knobs, lambda kn: rebuilt(obj, kn), loss.note)


def as_given(loss: Loss, obj: keras.losses.Loss, why: str) -> Loss:
    """The instance exactly as the file made it, without knobs."""
    return _keras_loss(loss.form, {}, lambda kn: obj,
                       f"the {type(obj).__name__} instance is used as given, with no knobs: {why}")


# ----------------------------------------------------------------------------- one loss per output

def _per_output(found, name: str) -> Loss:
    keys = list(found) if isinstance(found, Mapping) else list(range(len(found)))
    if not keys:
        raise FormError(f"{name} is empty: give a loss, or one loss per output")
    parts = {}
    for key in keys:
        entry = found[key]
        if entry is None:
            continue
        if isinstance(entry, (Mapping, list, tuple)):
            raise FormError(f"{name}[{key!r}] is a {type(entry).__name__}: give one loss per output")
        parts[key] = form_of(entry, f"{name}[{key!r}]")
    knobs = {f"{key}.{k}": v for key, part in parts.items() for k, v in part.knobs.items()}
    note = "; ".join(f"{key}: {part.note}" for key, part in parts.items() if part.note)
    return Loss("one loss per output", knobs, lambda kn: None, None, note, parts)


def each_output(loss: Loss, keys) -> Loss:
    """A single loss applied to each output and summed, as Keras' ``compile`` does for a multi-output model; each
    output's loss a term, every output taking the loss's own knobs."""
    note = ("the loss takes one output at a time: it is applied to each output and summed, as Keras' compile does"
            + (f"; {loss.note}" if loss.note else ""))
    return Loss(loss.form + ", applied to each output", dict(loss.knobs), loss.make, None, note,
                {key: loss for key in keys}, shared=True)
