"""Where a NaN was born: replay the step that first turned non-finite under TensorFlow's numeric checking, and name
the first operation that produced NaN or inf, forward or backward, with the line of code that created it:

    focal.py:7: log(pt) = -inf (forward)
    focal.py:6: gradient of power(1 - pt, gamma) = inf (backward)

Records are deterministic, so a replay with the same seed and knob changes reaches the very same step.
``tf.debugging.enable_check_numerics`` acts on graphs traced while it is on, in the calling thread (see
PITFALLS): the replay traces a fresh, plain (not XLA) forward and backward pass of that step's batch.
"""

from __future__ import annotations

import ast
import os
import re
import tensorflow as tf

from . import records

_MACHINERY = {"step.py", "nansource.py", "training.py", "usercode.py", "lossforms.py"}  # lossviz's own frames
# that only call the loss
# graph op type -> the names a line of code calls it by (the first is the word used when no call is found)
_CALLED = {"Log": ("log",), "Log1p": ("log1p",), "Pow": ("power", "pow", "**"), "RealDiv": ("divide", "/"),
           "Div": ("divide", "/"), "DivNoNan": ("divide_no_nan",), "Sqrt": ("sqrt",), "Rsqrt": ("rsqrt",),
           "Exp": ("exp",), "Reciprocal": ("reciprocal", "/"), "Mul": ("multiply", "*"), "Square": ("square",),
           "Sigmoid": ("sigmoid",), "Softplus": ("softplus",), "Tanh": ("tanh",), "Atanh": ("arctanh", "atanh"),
           "Mean": ("mean",), "Sum": ("sum",), "Xlogy": ("xlogy",), "Softmax": ("softmax",),
           "LogSoftmax": ("log_softmax",)}
_VALUES = {"NaN": "nan", "+Inf": "inf", "-Inf": "-inf", "Inf": "inf"}


def replay(trainer, step: int):
    """A new run with ``trainer``'s seed, settings and knob changes, trained up to the step before ``step`` with the
    changes of ``step`` applied: its ``next_batch()`` is the batch of ``step`` (records are deterministic, so this
    is the very step). The run is of the trainer's own class."""
    again = type(trainer)(trainer.demo.name, {**trainer.initial_settings, **records.knobs_of(trainer.records[0])},
                          trainer.seed)
    for at, key, _, value in records.knob_changes(trainer.records):
        if at <= step:
            again.at(at, **{key: value})
    if step > 1:
        again.advance(step - 1)
    again._apply_due()
    return again


def nan_source(trainer, first: dict | None = None) -> str | None:
    """For a run whose first non-finite value (``first``, its record) is in the loss or a gradient: the first
    operation of that step that produced it and the code line that created it; None for a finite run. A run whose
    loss and gradients stayed finite, its update overflowing the weights, gets that in words."""
    first = first or records.first_nonfinite(trainer.records)
    if first is None:
        return None
    if first["nonfinite_in"] == "weight":
        return ("no operation of the loss or its gradient: the update itself left float32's range "
                f"(in {first['first_nonfinite']}); lower lr or set clipnorm")
    with replay(trainer, first["step"]) as again:
        return _checked_step(again, again.next_batch())


def _checked_step(replay, batch) -> str | None:
    compiled = replay.compiled
    trained, fixed, _, _ = replay.state.parts()
    hp = replay.hp

    def step(trained, fixed, inputs, targets):
        with tf.GradientTape() as tape:
            tape.watch(trained)
            with compiled.scope(trained, fixed):
                loss, _, _ = compiled.loss_and_terms(inputs, targets, hp)
        return loss, tape.gradient(loss, trained)

    args = ([tf.constant(v) for v in trained], [tf.constant(v) for v in fixed],
            {k: tf.constant(v) for k, v in batch.inputs.items()}, {k: tf.constant(v) for k, v in batch.targets.items()})
    tf.debugging.enable_check_numerics()
    try:
        try:  # without autograph, the ops keep the lines of the file that created them
            concrete = tf.function(step, autograph=False).get_concrete_function(*args)
        except (TypeError, ValueError, NotImplementedError, tf.errors.OperatorNotAllowedInGraphError):
            concrete = tf.function(step).get_concrete_function(*args)  # code that needs autograph (an if on a knob)
        concrete(*args)
        return None  # (the replay found nothing: the records said otherwise)
    except tf.errors.InvalidArgumentError as e:
        return describe(str(e), concrete.graph)
    finally:
        tf.debugging.disable_check_numerics()


def describe(message: str, graph) -> str | None:
    """``file:line: expression = value (forward|backward)`` from a numeric-checking error and its graph."""
    node = re.search(r"\{\{node ([^}]+?)/CheckNumerics(?:V2)?\}\}", message)
    kind = re.search(r"Tensor had (\S+) values", message)
    if node is None:
        return None
    value = _VALUES.get(kind.group(1), kind.group(1).lower()) if kind else "nan"
    name = node.group(1)
    backward = name.startswith("gradient_tape/")
    op = _forward_op(graph, name) if backward else _op(graph, name)
    if op is None:
        return f"{name} = {value} ({'backward' if backward else 'forward'})"
    frame = _code_frame(op)
    what = _expression(op.type, frame[2] if frame else "") or op.type.lower()
    where = f"{os.path.basename(frame[0])}:{frame[1]}: " if frame else ""
    return where + (f"gradient of {what} = {value} (backward)" if backward else f"{what} = {value} (forward)")


def _op(graph, name: str):
    try:
        return graph.get_operation_by_name(name)
    except (KeyError, ValueError):
        return None


def _forward_op(graph, name: str):
    """The forward operation a gradient operation belongs to: ``gradient_tape/<forward op>/<grad op>``."""
    parts = name.split("/")[1:]
    for k in range(len(parts) - 1, 0, -1):
        found = _op(graph, "/".join(parts[:k]))
        if found is not None:
            return found
    return None


def _code_frame(op) -> tuple[str, int, str] | None:
    """The innermost frame of an operation's creation in the code that wrote the loss (a user's file or a
    lossviz module), not in TensorFlow, Keras or lossviz's step machinery."""
    found = None
    for frame in op.traceback:
        filename, lineno = frame.filename, frame.lineno
        line = getattr(frame, "line", None) or ""
        if ("site-packages" in filename or "/tensorflow/" in filename or "/keras/" in filename
                or "__autograph_generated" in filename):
            continue
        if os.path.basename(filename) in _MACHINERY and os.sep + "lossviz" + os.sep in filename:
            continue
        found = (filename, lineno, line or _read_line(filename, lineno))
    return found


def _read_line(filename: str, lineno: int) -> str:
    try:
        with open(filename, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                if i == lineno:
                    return line
    except OSError:
        pass
    return ""


def _expression(op_type: str, line: str) -> str | None:
    """The call on a line of code that an operation of ``op_type`` comes from, without its module prefix, e.g.
    ``log(pt)`` from ``return -ops.power(1 - pt, gamma) * ops.log(pt)``."""
    names = _CALLED.get(op_type, (op_type.lower(),))
    try:
        tree = ast.parse(line.strip().removeprefix("return ").strip())
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called.lower() in names:
                return f"{called}({', '.join(ast.unparse(a) for a in node.args)})"
        if isinstance(node, ast.BinOp):
            symbol = {ast.Pow: "**", ast.Div: "/", ast.Mult: "*"}.get(type(node.op))
            if symbol in names:
                return ast.unparse(node)
    return None
