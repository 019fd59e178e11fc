"""Your own loss as a formula: the grammar and its refusals, limits, parameters, LaTeX, equality with the built-in
losses, the exported Keras class, the NaN diagnosis, and the demo ``custom`` through the CLI."""

import csv
import math
import os
import subprocess
import sys

import hypothesis.strategies as st
import keras
import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings

from conftest import ROOT
from lossviz import formula as F
from lossviz import losses
from lossviz import settings as config
from lossviz.cli import main
from lossviz.training import diagnosis as formula_diagnosis, train, Trainer

RNG = np.random.default_rng(0)


def _binary_values(n=64):
    z = RNG.normal(0, 3, (n, 1)).astype(np.float32)
    return {"y": (RNG.random((n, 1)) < 0.3).astype(np.float32), "z": z, "p": np.asarray(keras.ops.sigmoid(z))}


def _evaluate(text, values, task="binary", **params):
    found = F.parse(text, task)
    return np.asarray(found.compile()(values, {**found.parameters, **params}))


# ----------------------------------------------------------------------------- the grammar


HOSTILE = [
    "__import__('os').system('id')", "().__class__.__bases__", "open('x','w')", "p.__class__", "lambda: 0",
    "[x for x in y]", "9**9**9", "p" * 1_000_000, "(" * 10_000 + "p" + ")" * 10_000, "p\x00", "\uff50 + 1",
    "p + \u0440", "print(p)", "eval", "exec(p)", "globals", "len(p)", "p if y else z", "y[0]", "f'{p}'", "(a := 1)",
    "log(p, 2)", "log(x=p)", "log(*p)", "p > 1", "True", "'text'", "b'x'", "p @ y", "p // 2", "p % 2", "~p",
    "not p", "p and y", "{p: 1}", "{p}", "(p, y)", "[p]", "p.real", "__builtins__", "__class__", "log(p)(1)",
    "getattr(p, 'x')", "p; import os", "p; w=__import__('os')", "p\nimport os", "None", "...", "1e999",
    "where(p < y < z, 1, 2)", "yield p", "await p", "p[1:2]", "lambda_ + sum(p)", "where(p, p > 1, 0)",
    "log(" * 41 + "p" + ")" * 41, "+".join(["p"] * 201), "+".join(f"a{i}" for i in range(13)), "2 ** 17",
    "p ** (4 * 5)", "", "   ", "p; w=nan", "p; =1",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_text_gets_the_parsers_one_line_error_and_runs_nothing(text, tmp_path):
    os.chdir(tmp_path)
    with pytest.raises(F.FormulaError) as info:
        F.parse(text)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert not os.listdir(tmp_path)  # nothing was executed: no file appeared


def _balanced(leaves: int) -> str:
    return "p" if leaves == 1 else f"({_balanced(leaves // 2)}+{_balanced(leaves - leaves // 2)})"


@pytest.mark.parametrize("text, words", [
    ("p.__class__", "attribute access (column 1)"),
    ("log(p) + y[0]", "subscripts (column 10)"),
    ("open('x')", "the function 'open'"),
    ("9**9**9", "a constant exponent above 16"),
    ("p" * 1001, "at most 1000 characters"),
    ("\uff50 + 1", "only printable ASCII characters are allowed: '\uff50' at column 1"),
    ("+".join(f"a{i}" for i in range(13)), "at most 12 parameters"),
    (None, "at most 200 parts"),  # a balanced sum: many parts, shallow
    ("log(" * 41 + "p" + ")" * 41, "nests deeper than 40 levels"),
    ("eval + p", "the Python name 'eval'"),
    ("p > 0.5", "a comparison outside the first argument of where"),
    ("log", "log without a call"),
])
def test_refusals_name_the_construct_and_its_column(text, words):
    text = text if text is not None else _balanced(128)
    with pytest.raises(F.FormulaError, match=None) as info:
        F.parse(text)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["p" * 1_000_000, "(" * 10_000 + ")" * 10_000, "p\x00", "__import__('os')"])
def test_hostile_text_on_the_cli_exits_2_with_one_line(text):
    # through stdin-free argv where it fits (an argv string holds no NUL and at most 128 KiB: see PITFALLS)
    if "\x00" in text or len(text) > 100_000:
        with pytest.raises(config.SettingError):
            config.resolve("custom", {"loss": text})
        return
    proc = subprocess.run([sys.executable, "-m", "lossviz", "train", "custom", "--set", f"loss={text}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("lossviz: error:")


TOKENS = ["p", "y", "z", "w", "gamma", "1", "0.5", "2", "+", "-", "*", "/", "**", "(", ")", ",", "log", "exp",
          "where", "<", ">", "clip", "sqrt", ".", "[", "]", "'", "lambda", ":", "=", ";", "__class__", "import", " "]


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_random_token_strings_raise_only_the_parsers_error(tokens):
    text = "".join(tokens)
    try:
        F.parse(text)
    except F.FormulaError:
        pass


def _trees():
    leaf = st.sampled_from(["p", "y", "z", "w", "1", "0.5", "2", "0"])
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["log", "exp", "sqrt", "abs", "sigmoid", "softplus", "tanh", "log1p", "cosh"]),
                  inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"where({t[0]} > {t[1]}, {t[0]}, {t[1]})"),
        st.tuples(inner, st.sampled_from(["2", "3", "0.5"])).map(lambda t: f"({t[0]}) ** {t[1]}"),
    ), max_leaves=12)


@hyp_settings(max_examples=60, deadline=None)
@given(_trees())
def test_random_valid_trees_evaluate_to_numbers_finite_or_not_never_a_crash(text):
    values = _binary_values(16)
    out = _evaluate(text, values)
    assert out.shape == (16,) and out.dtype == np.float32  # NaN and inf allowed: they are reported, not raised


def test_parameters_become_knobs_with_their_defaults():
    found = F.parse("-(alpha * y * (1 - p)**gamma * log(p)); gamma=2, alpha=0.25")
    assert found.parameters == {"alpha": 0.25, "gamma": 2.0} and found.inputs == ("y", "p")
    assert F.parse("w * r ** 2", "regression").parameters == {"w": 1.0}
    s = config.resolve("custom", {"loss": "w * (y - p) ** 2; w=3", "w": "5"})
    assert s["w"] == 5.0 and "w" in config.knob_keys("custom", s)
    with pytest.raises(config.SettingError, match="unknown key 'v'"):
        config.resolve("custom", {"loss": "w * p", "v": 1})
    with pytest.raises(config.SettingError, match="lr is also a setting"):
        config.resolve("custom", {"loss": "lr * p"})
    with pytest.raises(config.SettingError, match="shapes the compiled graph"):
        config.live_change("custom", s, "loss", "p")


@pytest.mark.parametrize("name", list(F.PRESETS))
def test_every_preset_parses_and_has_latex(name):
    task, text = F.PRESETS[name]
    found = F.parse(text, task)
    latex = found.latex()
    assert latex and "None" not in latex and latex.count("{") == latex.count("}")
    for name in found.inputs:
        assert (r"\hat{y}" if name == "yhat" else name) in latex
    for name in found.parameters:
        assert name in latex  # as \gamma, \alpha or \mathrm{eps}


def test_latex_of_known_formulas():
    assert F.parse("-(w * y * log(p))").latex() == r"-\left(w \cdot y \cdot \log\left(p\right)\right)"
    assert F.parse("(1 - p)**gamma / 2").latex() == r"\frac{{\left(1 - p\right)}^{\gamma}}{2}"
    assert F.parse("sqrt(r**2 + eps)", "regression").latex() == r"\sqrt{{r}^{2} + \mathrm{eps}}"


# ----------------------------------------------------------------------------- equal to the built-in losses


def test_formulas_equal_the_builtin_losses():
    v = _binary_values()
    y, p = v["y"], v["p"]
    p_edge = p.copy()
    p_edge[:3] = [[0.0], [1.0], [1e-9]]
    naive = F.PRESETS["Weighted BCE, naive (the sparse-penalty question's loss)"][1]
    np.testing.assert_allclose(_evaluate(naive, {**v, "p": p_edge}),
                               np.asarray(losses.naive_sparse_penalty_bce(y, p_edge, 10.0)), rtol=1e-5)
    clipped = F.PRESETS["Weighted BCE, clipped"][1]
    np.testing.assert_allclose(_evaluate(clipped, {**v, "p": p_edge}),
                               np.asarray(losses.sparse_penalty_bce(y, p_edge, 10.0, 1e-7)), rtol=1e-5)
    logits = F.PRESETS["Weighted BCE from logits"][1]
    np.testing.assert_allclose(_evaluate(logits, v),
                               np.asarray(losses.sparse_penalty_bce(y, v["z"], 10.0, from_logits=True)), rtol=1e-5)
    yr = RNG.random((32, 3)).astype(np.float32)
    yh = RNG.random((32, 3)).astype(np.float32)
    reg = {"y": yr, "yhat": yh, "r": yh - yr}
    np.testing.assert_allclose(_evaluate("-(r**2)", reg, "regression"), np.asarray(losses.negative_mse(yr, yh)),
                               rtol=1e-5)
    np.testing.assert_allclose(_evaluate("1 / (r**2 + eps); eps=0.01", reg, "regression"),
                               np.asarray(losses.inverse_mse(yr, yh, 0.01)), rtol=1e-5)


def test_custom_demo_trains_like_the_builtin_variant_bit_for_bit():
    naive = F.PRESETS["Weighted BCE, naive (the sparse-penalty question's loss)"][1]
    mine = train("custom", {"loss": naive, "lr": 0.05}, steps=12)
    builtin = train("sparse-penalty", {"variant": "naive", "lr": 0.05}, steps=12)
    assert [r["loss"] for r in mine][:2] == [r["loss"] for r in builtin][:2]
    assert mine[2]["nonfinite"] > 0 and builtin[2]["nonfinite"] > 0  # both NaN at step 3
    assert {k for k in mine[0] if k.startswith("set:")} >= {"set:w", "set:lr"}


def test_the_nan_diagnosis_names_the_sub_expression():
    found = F.parse("-(w * y * log(p) + (1 - y) * log(1 - p)); w=10")
    y = np.array([[1.0], [0.0]], np.float32)
    assert found.diagnose({"y": y, "p": np.array([[0.0], [0.5]], np.float32), "w": 10.0}) == \
        "log(p) = -inf at y = 1, p = 0"
    assert found.diagnose({"y": y, "p": np.array([[0.5], [0.4]], np.float32), "w": 10.0}) is None
    with Trainer("custom", {"loss": "-(w * y * log(p) + (1 - y) * log(1 - p)); w=10", "lr": 0.05}) as t:
        list(t.run(10))
        assert formula_diagnosis(t) == "log(p) = -inf at y = 0, p = 0"


# ----------------------------------------------------------------------------- the exported Keras class


@pytest.mark.parametrize("name", ["Focal loss (Lin et al. 2017)", "Huber (regression)", "Hinge"])
def test_exported_keras_class_matches_and_round_trips(name, tmp_path):
    task, text = F.PRESETS[name]
    found = F.parse(text, task)
    class_name = "Exported" + "".join(c for c in name.title() if c.isalpha())[:20]
    namespace = {}
    exec(compile(found.keras_source(class_name), "<lossviz export>", "exec"), namespace)  # our output, not user text
    loss_class = namespace[class_name]
    loss = loss_class()
    if task == "binary":
        v = _binary_values()
        expected = _evaluate(text, v)
        got = np.asarray(loss.call(v["y"], v["z"]))
        model_out, y_train = 1, (RNG.random((64, 1)) < 0.3).astype(np.float32)
    else:
        yr, yh = RNG.random((64, 2)).astype(np.float32), RNG.random((64, 2)).astype(np.float32)
        expected = _evaluate(text, {"y": yr, "yhat": yh, "r": yh - yr}, "regression")
        got = np.asarray(loss.call(yr, yh))
        model_out, y_train = 2, yr
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert loss_class.from_config(loss.get_config()).get_config() == loss.get_config()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(model_out)(inputs))
    model.compile(optimizer="sgd", loss=loss)
    model.fit(RNG.random((64, 4)).astype(np.float32), y_train, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert type(again.loss).__name__ == class_name


# ----------------------------------------------------------------------------- the CLI


def test_cli_custom_train_landscape_and_sweep(tmp_path, capsys):
    out = tmp_path / "run.csv"
    assert main(["train", "custom", "--set", "task=binary", "--set", "loss=-(w*y*log(p) + (1-y)*log(1-p))",
                 "--set", "w=10", "--set", "lr=0.05", "--steps", "6", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[2]["loss"] == "nan" and rows[0]["set:w"] == "10.0" and "metric:recall" in rows[0]
    err = capsys.readouterr().err
    assert "in the formula: log(p) = -inf" in err
    land = tmp_path / "land.csv"
    assert main(["landscape", "custom", "--set", "task=regression", "--set", "loss=log(cosh(r))", "--steps", "5",
                 "--resolution", "3", "--out", str(land)]) == 0
    assert len(list(csv.DictReader(land.open()))) == 9
    sweep = tmp_path / "sweep.csv"
    assert main(["sweep", "custom", "--set", "loss=-(w*y*log_sigmoid(z) + (1-y)*log_sigmoid(-z)); w=1",
                 "--grid", "w=1,20", "--steps", "20", "--jobs", "1", "--out", str(sweep)]) == 0
    rows = list(csv.DictReader(sweep.open()))
    assert [r["w"] for r in rows] == ["1", "20"] and all(r["status"] in ("ok", "stalled") for r in rows)
    assert "metric:recall" in rows[0]


# ----------------------------------------------------------------------------- the page


def test_your_loss_page_preset_edit_train_refuse():
    from test_live_page import _box, _press
    from test_pages import _app, _finish

    at = _app("pages/5_Your_loss.py")
    assert not at.error and at.latex
    at.sidebar.selectbox(key="custom:preset").set_value("Focal loss (Lin et al. 2017)").run()
    assert r"\gamma" in at.latex[0].value and _box(at, "custom:gamma").value == "2.0"
    assert any("class MyLoss(keras.losses.Loss)" in c.value for c in at.code)
    _box(at, "custom:gamma").set_value("3").run()
    _box(at, "custom:lr").set_value("0.01").run()
    at.sidebar.number_input(key="custom:steps").set_value(40).run()
    _press(at, "Train")
    _finish(at, "custom")
    assert not at.exception and not at.error
    job = at.session_state["jobs"]["custom"]["A"]
    assert job.trainer.settings["gamma"] == 3.0 and len(job.records) == 40
    assert at.query_params["gamma"] == "3.0" and "gamma=2, alpha=0.25" in at.query_params["loss"]
    at.sidebar.text_area(key="custom:loss").set_value("().__class__.__bases__").run()
    assert not at.exception
    assert any("not allowed in a formula: attribute access (column 1)" in e.value for e in at.error)
    at.sidebar.text_area(key="custom:loss").set_value("y * 2").run()
    assert any("does not depend on the prediction" in w.value for w in at.warning)


def test_your_loss_from_the_address_and_a_hostile_one():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages/5_Your_loss.py"), default_timeout=120)
    at.query_params["task"] = "regression"
    at.query_params["loss"] = "where(abs(r) <= delta, 0.5 * r**2, delta * (abs(r) - 0.5 * delta)); delta=1"
    at.query_params["delta"] = "0.25"
    at.run()
    assert not at.exception and not at.warning
    assert at.sidebar.selectbox(key="custom:task").value == "regression"
    at = AppTest.from_file(str(ROOT / "pages/5_Your_loss.py"), default_timeout=120)
    at.query_params["loss"] = "__import__('os').system('touch pwned')"
    at.run()
    assert not at.exception and any("cannot use" in w.value for w in at.warning)
    assert not (ROOT / "pwned").exists()
