"""Your own loss as a formula: text parsed with ``ast`` and walked into ``keras.ops``, never evaluated.

A formula is a Python-like expression of the task's inputs, per sample (broadcast element-wise, then averaged
over the last axis), with numbers, ``+ - * / **``, unary minus, comparisons inside ``where``, parentheses and
calls to the functions in :data:`FUNCTIONS`. Every other free name is a *parameter*, a knob with default 1.0
or the default given after a ``;``::

    -(alpha * y * (1 - p)**gamma * log(p) + (1 - alpha) * (1 - y) * p**gamma * log(1 - p)); gamma=2, alpha=0.25

Inputs: ``task=binary``: ``y`` (0/1 target), ``p`` (the predicted probability) and ``z`` (its logit,
``p = sigmoid(z)``); ``task=regression``: ``y``, ``yhat`` and ``r = yhat - y``.

Nothing in the text is executed: no ``eval``, ``exec``, ``compile``, ``sympify`` or import driven by it. The
text is checked before any tensor work (:data:`LIMITS`), and anything outside the grammar is refused with one
:class:`FormulaError` naming the construct and its column. This module imports Keras only to compile.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .knobs import SettingError

TASKS = {"binary": ("y", "p", "z"), "regression": ("y", "yhat", "r")}
LIMITS = {"characters": 1000, "depth": 40, "nodes": 200, "parameters": 12, "constant_exponent": 16}

# name -> (number of arguments, keras.ops function name, LaTeX template with {0}, {1}, ...)
FUNCTIONS: dict[str, tuple[int, str, str]] = {
    "log": (1, "log", r"\log\left({0}\right)"),
    "exp": (1, "exp", r"e^{{{0}}}"),
    "sqrt": (1, "sqrt", r"\sqrt{{{0}}}"),
    "abs": (1, "abs", r"\left|{0}\right|"),
    "square": (1, "square", r"\left({0}\right)^2"),
    "clip": (3, "clip", r"\operatorname{{clip}}\left({0}, {1}, {2}\right)"),
    "minimum": (2, "minimum", r"\min\left({0}, {1}\right)"),
    "maximum": (2, "maximum", r"\max\left({0}, {1}\right)"),
    "where": (3, "where", r"\begin{{cases}} {1} & \text{{if }} {0} \\ {2} & \text{{otherwise}} \end{{cases}}"),
    "sigmoid": (1, "sigmoid", r"\sigma\left({0}\right)"),
    "softplus": (1, "softplus", r"\operatorname{{softplus}}\left({0}\right)"),
    "log_sigmoid": (1, "log_sigmoid", r"\log\sigma\left({0}\right)"),
    "tanh": (1, "tanh", r"\tanh\left({0}\right)"),
    "log1p": (1, "log1p", r"\log\left(1 + {0}\right)"),
    "expm1": (1, "expm1", r"\left(e^{{{0}}} - 1\right)"),
    "cosh": (1, "cosh", r"\cosh\left({0}\right)"),
    "sinh": (1, "sinh", r"\sinh\left({0}\right)"),
    "relu": (1, "relu", r"\max\left({0}, 0\right)"),
    "sign": (1, "sign", r"\operatorname{{sign}}\left({0}\right)"),
}
_COMPARE = {ast.Lt: ("<", "less"), ast.LtE: ("<=", "less_equal"), ast.Gt: (">", "greater"),
            ast.GtE: (">=", "greater_equal"), ast.Eq: ("==", "equal"), ast.NotEq: ("!=", "not_equal")}
_BINARY = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "sigma", "tau", "theta", "kappa", "eta",
          "rho", "omega", "phi", "psi", "nu", "xi", "zeta"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FORBIDDEN_NAMES = set(dir(builtins)) - set(FUNCTIONS)
# what a refused node is, in words
_WORDS = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambda", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets", ast.Starred: "starred arguments",
    ast.NamedExpr: "the walrus operator", ast.JoinedStr: "f-strings", ast.FormattedValue: "f-strings",
    ast.IfExp: "if-expressions (use where)", ast.BoolOp: "and/or (use where)", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "slices",
}


# name -> (task, text): the page's presets
PRESETS: dict[str, tuple[str, str]] = {
    "Focal loss (Lin et al. 2017)": (
        "binary", "-(alpha * y * (1 - p)**gamma * log(p) + (1 - alpha) * (1 - y) * p**gamma * log(1 - p)); "
                  "gamma=2, alpha=0.25"),
    "Weighted BCE, naive (the sparse-penalty question's loss)": (
        "binary", "-(w * y * log(p) + (1 - y) * log(1 - p)); w=10"),
    "Weighted BCE, clipped": (
        "binary", "-(w * y * log(clip(p, eps, 1 - eps)) + (1 - y) * log(1 - clip(p, eps, 1 - eps))); w=10, eps=1e-7"),
    "Weighted BCE from logits": ("binary", "-(w * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)); w=10"),
    "Hinge": ("binary", "maximum(0, 1 - (2 * y - 1) * z)"),
    "Huber (regression)": ("regression", "where(abs(r) <= delta, 0.5 * r**2, delta * (abs(r) - 0.5 * delta)); delta=1"),
    "Log-cosh (regression)": ("regression", "log(cosh(r))"),
    "-MSE, maximised (regression)": ("regression", "-(r**2)"),
}


class FormulaError(SettingError):
    """A formula outside the grammar or its limits; the message is one line naming what and where."""


@dataclass(frozen=True)
class Formula:
    """A checked formula: its canonical text, tree, task, inputs used and parameters with defaults."""

    text: str
    task: str
    tree: ast.Expression
    parameters: dict[str, float]  # name -> default, in order of first appearance
    inputs: tuple[str, ...]  # the task's inputs the formula uses

    @property
    def expression(self) -> str:
        """The expression as lossviz reads it (canonical spacing and parentheses)."""
        return ast.unparse(self.tree)

    def latex(self) -> str:
        return _latex(self.tree.body)

    def compile(self) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
        """``f(inputs, parameters) -> per-sample loss``: a function of tensors on ``keras.ops`` (traced once in
        the trainer's step; no Python runs per step)."""
        from keras import ops

        body = _compiler(ops)(self.tree.body)

        def loss(inputs, parameters):
            values = ops.broadcast_to(ops.convert_to_tensor(body({**inputs, **parameters}), "float32"),
                                      ops.shape(inputs["y"]))
            return ops.mean(values, axis=-1)
        return loss

    def diagnose(self, values: Mapping[str, Any]) -> str | None:
        """Where the formula first turns non-finite on ``values`` (the task's inputs and the parameters, by
        name): the innermost sub-expression that is NaN or inf where all its operands are finite, with the
        inputs at the first such element, e.g. ``log(p) = -inf at y = 1, p = 0``. None when all is finite."""
        import numpy as np
        from keras import ops

        build = _compiler(ops)
        env = {k: ops.convert_to_tensor(np.asarray(v, np.float32)) for k, v in values.items()}
        shape = np.broadcast_shapes(*[np.shape(v) for v in values.values()])
        evaluate = lambda node: np.broadcast_to(np.asarray(build(node)(env), np.float64), shape)  # noqa: E731
        for node in _post_order(self.tree.body):
            if not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)):
                continue
            bad = ~np.isfinite(evaluate(node))
            for child in _operands(node):
                bad &= np.isfinite(evaluate(child))
            if bad.any():
                where = np.unravel_index(int(np.argmax(bad)), shape)
                value = float(evaluate(node)[where])
                inputs = ", ".join(f"{name} = {float(np.broadcast_to(values[name], shape)[where]):.4g}"
                                   for name in self.inputs)
                word = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
                return f"{ast.unparse(node)} = {word}" + (f" at {inputs}" if inputs else "")
        return None

    def keras_source(self, class_name: str = "FormulaLoss") -> str:
        """A standalone ``keras.losses.Loss`` subclass computing this formula with ``keras.ops``."""
        if not _NAME.match(class_name) or keyword.iskeyword(class_name):
            raise FormulaError(f"class name {class_name!r} is not a Python identifier")
        params = list(self.parameters)
        args = "".join(f"{name}={self.parameters[name]!r}, " for name in params)
        assign = "".join(f"        self.{name} = {name}\n" for name in params)
        config = ", ".join([f'"{name}": self.{name}' for name in params] + ['"from_logits": self.from_logits']
                           if self.task == "binary" else [f'"{name}": self.{name}' for name in params])
        if self.task == "binary":
            prelude = ('        y = ops.cast(y_true, "float32")\n'
                       '        out = ops.cast(y_pred, "float32")\n'
                       '        z = out if self.from_logits else ops.log(out) - ops.log1p(-out)\n'
                       '        p = ops.sigmoid(z) if self.from_logits else out\n')
            init_extra, assign_extra = "from_logits=True, ", "        self.from_logits = from_logits\n"
            doc_extra = ("    With ``from_logits=True`` (the default) ``y_pred`` is the logit z and p = sigmoid(z); "
                         "otherwise\n    ``y_pred`` is the probability p.\n")
        else:
            prelude = ('        y = ops.cast(y_true, "float32")\n'
                       '        yhat = ops.cast(y_pred, "float32")\n'
                       '        r = yhat - y\n')
            init_extra, assign_extra, doc_extra = "", "", ""
        expression = _source(self.tree.body, set(params))
        return (
            '"""Generated by lossviz from a formula; needs only Keras 3."""\n\n'
            "import keras\n"
            "from keras import ops\n\n\n"
            f'@keras.saving.register_keras_serializable(package="lossviz_formula", name="{class_name}")\n'
            f"class {class_name}(keras.losses.Loss):\n"
            f'    """Per sample, averaged over the last axis: {self.expression}\n\n{doc_extra}    """\n\n'
            f'    def __init__(self, {args}{init_extra}name="{_snake(class_name)}", **kwargs):\n'
            "        super().__init__(name=name, **kwargs)\n"
            f"{assign}{assign_extra}\n"
            "    def call(self, y_true, y_pred):\n"
            f"{prelude}"
            f"        value = ops.convert_to_tensor({expression}, \"float32\")\n"
            "        value = ops.broadcast_to(value, ops.shape(y))\n"
            "        return ops.mean(value, axis=-1)\n\n"
            "    def get_config(self):\n"
            "        config = super().get_config()\n"
            f"        config.update({{{config}}})\n"
            "        return config\n"
        )


def parse(text: Any, task: str = "binary") -> Formula:
    """Check and parse a formula (``expression`` or ``expression; name=value, ...``); raise ``FormulaError``."""
    if task not in TASKS:
        raise FormulaError(f"task must be one of {', '.join(TASKS)}, got {str(task)[:40]!r}")
    if not isinstance(text, str):
        raise FormulaError("a formula is text")
    if len(text) > LIMITS["characters"]:
        raise FormulaError(f"a formula has at most {LIMITS['characters']} characters; this one has {len(text)}")
    for column, char in enumerate(text, 1):
        if not (char.isascii() and (char.isprintable() or char in " \t")):
            raise FormulaError(f"only printable ASCII characters are allowed: {char!r} at column {column}")
    expression, _, defaults_text = text.partition(";")
    if not expression.strip():
        raise FormulaError("the formula is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"not a formula: {e.msg} (column {e.offset or 0})") from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError(f"the formula nests deeper than {LIMITS['depth']} levels") from None
    names = _check(tree.body, TASKS[task])
    inputs = tuple(n for n in TASKS[task] if n in names)
    params = {n: 1.0 for n in names if n not in TASKS[task]}
    params.update(_defaults(defaults_text, params))
    if len(params) > LIMITS["parameters"]:
        raise FormulaError(f"at most {LIMITS['parameters']} parameters; this formula has {len(params)}")
    return Formula(expression.strip(), task, tree, params, inputs)


def _defaults(text: str, params: Mapping[str, float]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or name not in params:
            raise FormulaError(f"after ';' give defaults as name=value for the formula's parameters "
                               f"({', '.join(params) or 'none'}), got {item[:40]!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise FormulaError(f"the default of {name} must be a finite number, got {value[:40]!r}")
        found[name] = number
    return found


def _check(root: ast.AST, inputs: tuple[str, ...]) -> list[str]:
    """Walk the tree: refuse what the grammar does not allow; return the free names in order of appearance."""
    names: dict[str, None] = {}
    count = 0

    def refuse(node, what):
        raise FormulaError(f"not allowed in a formula: {what} (column {getattr(node, 'col_offset', 0) + 1})")

    def visit(node, depth, in_where_test=False):
        nonlocal count
        count += 1
        if count > LIMITS["nodes"]:
            raise FormulaError(f"a formula has at most {LIMITS['nodes']} parts (numbers, names, operations)")
        if depth > LIMITS["depth"]:
            raise FormulaError(f"the formula nests deeper than {LIMITS['depth']} levels")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                refuse(node, f"the constant {str(node.value)[:20]!r}")
            if not math.isfinite(float(node.value)):
                refuse(node, "a non-finite constant")
        elif isinstance(node, ast.Name):
            name = node.id
            if name.startswith("__") or not _NAME.match(name):
                refuse(node, f"the name {name!r}")
            if name in FUNCTIONS:
                refuse(node, f"{name} without a call")
            if name in _FORBIDDEN_NAMES or keyword.iskeyword(name):
                refuse(node, f"the Python name {name!r}")
            names.setdefault(name)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                refuse(node, f"the operator {type(node.op).__name__}")
            if isinstance(node.op, ast.Pow):
                exponent = _constant(node.right)
                if exponent is not None and abs(exponent) > LIMITS["constant_exponent"]:
                    refuse(node.right, f"a constant exponent above {LIMITS['constant_exponent']}")
            visit(node.left, depth + 1)
            visit(node.right, depth + 1)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                refuse(node, f"the operator {type(node.op).__name__}")
            visit(node.operand, depth + 1)
        elif isinstance(node, ast.Compare):
            if not in_where_test:
                refuse(node, "a comparison outside the first argument of where")
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                refuse(node, "a chained or non-numeric comparison")
            visit(node.left, depth + 1)
            visit(node.comparators[0], depth + 1)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                refuse(node, "calling anything but a function name")
            name = node.func.id
            if name not in FUNCTIONS:
                refuse(node, f"the function {name[:40]!r} (allowed: {', '.join(FUNCTIONS)})")
            if node.keywords:
                refuse(node, f"keyword arguments to {name}")
            if any(isinstance(a, ast.Starred) for a in node.args):
                refuse(node, "starred arguments")
            if len(node.args) != FUNCTIONS[name][0]:
                refuse(node, f"{name} with {len(node.args)} arguments (it takes {FUNCTIONS[name][0]})")
            for i, arg in enumerate(node.args):
                visit(arg, depth + 1, in_where_test=name == "where" and i == 0)
        else:
            refuse(node, _WORDS.get(type(node), type(node).__name__))

    visit(root, 0)
    return list(names)


def _constant(node: ast.AST) -> float | None:
    """The value of a sub-expression made of numbers only (within the limits), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _constant(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if not (isinstance(node, ast.BinOp) and type(node.op) in _BINARY):
        return None
    a, b = _constant(node.left), _constant(node.right)
    if a is None or b is None:
        return None
    if isinstance(node.op, ast.Pow) and abs(b) > LIMITS["constant_exponent"]:
        raise FormulaError(f"not allowed in a formula: a constant exponent above {LIMITS['constant_exponent']} "
                           f"(column {node.right.col_offset + 1})")
    try:
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        return float(a ** b)
    except (ZeroDivisionError, OverflowError, TypeError, ValueError):
        return math.nan


def _operands(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    if isinstance(node, ast.Call):
        return list(node.args)
    return []


def _post_order(node: ast.AST):
    for child in _operands(node):
        yield from _post_order(child)
    yield node


def _compiler(ops):
    """A function turning a checked node into a function of a dict of values (tensors) -> tensor."""
    def build(node):
        if isinstance(node, ast.Constant):
            value = float(node.value)
            return lambda env: value
        if isinstance(node, ast.Name):
            name = node.id
            return lambda env: env[name]
        if isinstance(node, ast.UnaryOp):
            inner = build(node.operand)
            return (lambda env: ops.negative(inner(env))) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            left, right, fn = build(node.left), build(node.right), getattr(ops, _BINARY[type(node.op)])
            return lambda env: fn(_tensor(ops, left(env)), _tensor(ops, right(env)))
        if isinstance(node, ast.Compare):
            left, right = build(node.left), build(node.comparators[0])
            fn = getattr(ops, _COMPARE[type(node.ops[0])][1])
            return lambda env: fn(_tensor(ops, left(env)), _tensor(ops, right(env)))
        args = [build(a) for a in node.args]
        fn = getattr(ops, FUNCTIONS[node.func.id][1])
        if node.func.id == "where":
            cond, a, b = args
            return lambda env: ops.where(cond(env), _tensor(ops, a(env)), _tensor(ops, b(env)))
        return lambda env: fn(*[_tensor(ops, a(env)) for a in args])
    return build


def _tensor(ops, value):
    return ops.convert_to_tensor(value, "float32")


def _source(node: ast.AST, params: set[str]) -> str:
    """Python source on ``keras.ops`` for a checked node (names: locals for inputs, ``self.`` for parameters)."""
    if isinstance(node, ast.Constant):
        return repr(float(node.value))
    if isinstance(node, ast.Name):
        return f"self.{node.id}" if node.id in params else node.id
    if isinstance(node, ast.UnaryOp):
        inner = _source(node.operand, params)
        return f"ops.negative({inner})" if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        return f"ops.{_BINARY[type(node.op)]}({_source(node.left, params)}, {_source(node.right, params)})"
    if isinstance(node, ast.Compare):
        fn = _COMPARE[type(node.ops[0])][1]
        return f"ops.{fn}({_source(node.left, params)}, {_source(node.comparators[0], params)})"
    fn = FUNCTIONS[node.func.id][1]
    args = ", ".join(f"ops.convert_to_tensor({_source(a, params)}, \"float32\")" if fn != "where" or i else
                     _source(a, params) for i, a in enumerate(node.args))
    return f"ops.{fn}({args})"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ----------------------------------------------------------------------------- LaTeX

_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.Pow: 4}


def _symbol(name: str) -> str:
    if name == "yhat":
        return r"\hat{y}"
    if name in _GREEK:
        return "\\" + name
    if len(name) == 1:
        return name
    head, _, tail = name.partition("_")
    return (r"\mathrm{" + head.replace("_", r"\_") + "}") + (f"_{{\\mathrm{{{tail.replace('_', ' ')}}}}}" if tail else "")


def _latex(node: ast.AST, parent: int = 0) -> str:
    """LaTeX of a checked node, parenthesised where the parent binds tighter."""
    if isinstance(node, ast.Constant):
        return f"{node.value:g}" if isinstance(node.value, float) else str(node.value)
    if isinstance(node, ast.Name):
        return _symbol(node.id)
    if isinstance(node, ast.UnaryOp):
        inner = _latex(node.operand, 3)
        text = ("-" if isinstance(node.op, ast.USub) else "+") + inner
        return _wrap(text, parent > 2)
    if isinstance(node, ast.BinOp):
        level = _PRECEDENCE[type(node.op)]
        if isinstance(node.op, ast.Div):
            return r"\frac{" + _latex(node.left) + "}{" + _latex(node.right) + "}"
        if isinstance(node.op, ast.Pow):
            return "{" + _latex(node.left, 5) + "}^{" + _latex(node.right) + "}"
        sign = {ast.Add: " + ", ast.Sub: " - ", ast.Mult: r" \cdot "}[type(node.op)]
        right = _latex(node.right, level + (1 if isinstance(node.op, ast.Sub) else 0))
        return _wrap(_latex(node.left, level) + sign + right, parent > level)
    if isinstance(node, ast.Compare):
        op = {ast.Lt: "<", ast.LtE: r"\le", ast.Gt: ">", ast.GtE: r"\ge", ast.Eq: "=", ast.NotEq: r"\ne"}
        return f"{_latex(node.left)} {op[type(node.ops[0])]} {_latex(node.comparators[0])}"
    template = FUNCTIONS[node.func.id][2]
    return template.format(*[_latex(a) for a in node.args])


def _wrap(text: str, needed: bool) -> str:
    return r"\left(" + text + r"\right)" if needed else text
