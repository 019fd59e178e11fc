"""Your own code as a demo: every loss form, terms, knobs (live and graph-shaping), bad files in one line, where a
NaN was born, the CLI, the address, and a file's page under AppTest."""

import contextlib
import io
import re
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from dashboard import navigation
from lossviz import catalog, cli, links, nansource, records, settings as config, usercode
from lossviz.training import Trainer


EXAMPLES = {name: str(ROOT / "examples" / f"{name}.py") for name in ("focal", "dice", "two_outputs")}


def _file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


SQUARED = """
    from keras import ops


    def loss(y_true, y_pred, k=2.0):
        return k * ops.mean(ops.square(y_pred - y_true), axis=-1)
"""

KERAS_LOSS = """
        import keras
        from keras import ops


        class Squared(keras.losses.Loss):
            def __init__(self, k={default}, name="squared", **kwargs):
                super().__init__(name=name, **kwargs)
                self.k = k

            def call(self, y_true, y_pred):
                return self.k * ops.mean(ops.square(y_pred - y_true), axis=-1)

            def get_config(self):
                return {{**super().get_config(), "k": self.k}}
"""

FORMS = {
    "function": SQUARED,
    "factory": """
        from keras import ops


        def loss(k=2.0):
            def f(y_true, y_pred):
                return k * ops.mean(ops.square(y_pred - y_true), axis=-1)
            return f
    """,
    "class": """
        from keras import ops


        class loss:
            def __init__(self, k=2.0):
                self.k = k

            def __call__(self, y_true, y_pred):
                return self.k * ops.mean(ops.square(y_pred - y_true), axis=-1)
    """,
    "keras Loss subclass": KERAS_LOSS.format(default=2.0) + "\n\n        loss = Squared\n",
    "keras Loss instance": KERAS_LOSS.format(default=1.0) + "\n\n        loss = Squared(k=2.0)\n",
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_loss_form_is_the_same_loss_with_its_knob(tmp_path, form):
    name = _file(tmp_path, "sq.py", FORMS[form])
    code = usercode.load(name)
    assert code.loss.form == form and code.loss.knobs == {"k": 2.0}
    assert "k" in config.keys(name) and config.param(name, "k").structural is False
    trainer = Trainer(name, {"task": "regression"}, seed=0)
    batch = trainer.data.take(np.arange(16))
    out = trainer.forward(batch.inputs)
    by_hand = np.mean(2.0 * np.mean((out["y"] - batch.targets["y"]) ** 2, axis=-1))
    assert trainer.loss(batch) == pytest.approx(by_hand, rel=1e-5)
    recs = list(trainer.run(3))
    assert [r["step"] for r in recs] == [1, 2, 3] and recs[0]["set:k"] == 2.0
    assert all(np.isfinite(r["loss"]) for r in recs)


def test_a_knob_change_mid_run_needs_no_retrace(tmp_path):
    name = _file(tmp_path, "sq.py", SQUARED)
    trainer = Trainer(name, {"task": "regression"}, seed=0)
    first = list(trainer.run(2))
    traces = trainer.compiled.traces
    batch = trainer.data.take(np.arange(16))
    before = trainer.loss(batch)
    trainer.set(k=4.0)
    recs = list(trainer.run(2))
    assert trainer.compiled.traces == traces
    assert recs[-1]["set:k"] == 4.0 and first[-1]["set:k"] == 2.0
    assert trainer.loss(batch) == pytest.approx(2 * before, rel=0.05)


def test_a_knob_that_needs_a_python_number_shapes_the_graph(tmp_path):
    name = _file(tmp_path, "floor.py", """
        import math
        from keras import ops


        def loss(y_true, y_pred, epsilon=1e-7, penalty=10.0):
            floor = math.log(epsilon)
            return -(penalty * y_true * ops.maximum(ops.log(y_pred), floor)
                     + (1.0 - y_true) * ops.maximum(ops.log(1.0 - y_pred), floor))
    """)
    usercode.load(name)
    epsilon, penalty = config.param(name, "epsilon"), config.param(name, "penalty")
    assert epsilon.structural and "floor.py:7: TypeError" in epsilon.help and not penalty.structural
    trainer = Trainer(name, {"epsilon": 1e-3}, seed=0)
    assert np.isfinite(list(trainer.run(2))[-1]["loss"])
    with pytest.raises(config.SettingError, match="epsilon shapes the compiled graph"):
        trainer.set(epsilon=1e-4)
    trainer.set(penalty=3.0)  # a tensor knob still changes live


def test_a_dict_of_terms_gets_the_probe_and_the_anatomy(tmp_path):
    name = EXAMPLES["two_outputs"]
    trainer = Trainer(name, {"alpha": 0.8, "term_grads": "every"}, seed=0)
    recs = list(trainer.run(3))
    assert config.terms(name) == ("regression", "classification")
    last = recs[-1]
    assert last["loss"] == pytest.approx(last["loss:regression"] + last["loss:classification"], rel=1e-5)
    assert {"grad_norm@regression", "grad_norm@classification", "cos:regression|classification",
            "grad_norm@regression:trunk", "metric:accuracy", "set:alpha"} <= set(last)
    # the validation half of data() is the evaluation set
    assert len(trainer.eval_set) == 128


def test_own_model_weights_are_seeded_by_their_initialisers():
    a = Trainer(EXAMPLES["dice"], seed=3).initial_weights
    b = Trainer(EXAMPLES["dice"], seed=3).initial_weights
    c = Trainer(EXAMPLES["dice"], seed=4).initial_weights
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert np.all(a[1] == 0)  # the conv bias: zeros, as its initialiser says


def _cli(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, err.getvalue()


BAD = {
    "syntax": ("def loss(y_true, y_pred)\n    return y_pred\n", r"bad\.py:1: syntax error"),
    "import": ("import not_a_module_anywhere\n", r"bad\.py:1: cannot import: No module named"),
    "no loss": ("def focal(y_true, y_pred):\n    return y_pred\n", r"no object named 'loss'; the file holds: focal"),
    "raises": ("def loss(y_true, y_pred):\n    raise RuntimeError('not yet')\n",
               r"bad\.py:2: RuntimeError: not yet"),
    "nan default": ("def loss(y_true, y_pred, gamma=float('nan')):\n    return y_pred * gamma\n",
                    r"gamma=nan is not a finite number"),
    "returns text": ("def loss(y_true, y_pred):\n    return 'hello'\n", r"the loss returns str"),
    "keras 2": ("from keras import backend as K\n\n\ndef loss(y_true, y_pred):\n    return -K.log(y_pred)\n",
                r"bad\.py:5: K\.log is a Keras 2 backend function, gone in Keras 3: use keras\.ops\.log"),
    "shape": ("import numpy as np\nimport keras\nfrom keras import ops\n\n\ndef model():\n    x = keras.Input((3,))\n"
              "    return keras.Model(x, keras.layers.Dense(2)(x))\n\n\ndef data(seed):\n"
              "    return np.zeros((64, 3)), np.zeros((64, 5))\n\n\ndef loss(y_true, y_pred):\n"
              "    return ops.square(y_true - y_pred)\n", r"bad\.py:16: .*shape mismatch between the model, the data"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, case):
    text, pattern = BAD[case]
    path = tmp_path / "bad.py"
    path.write_text(text)
    code, err = _cli("train", str(path), "--steps", "2", "--out", str(tmp_path / "o.csv"))
    lines = [line for line in err.splitlines() if line.startswith("lossviz: error")]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def test_a_missing_file_is_one_line(tmp_path):
    code, err = _cli("train", str(tmp_path / "nowhere.py"), "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "nowhere.py: no such file" in err


def test_cli_trains_a_file_with_set_and_at_and_names_it_in_the_command(tmp_path):
    out = tmp_path / "run.csv"
    focal = EXAMPLES["focal"]
    code, err = _cli("train", focal, "--set", "gamma=3", "--at", "3:gamma=1", "--steps", "4", "--out", str(out))
    assert code == 0, err
    assert pd.read_csv(out)["set:gamma"].tolist() == [3.0, 3.0, 1.0, 1.0]
    settings = config.resolve(focal, {"gamma": 3})
    command = config.cli_command(focal, settings, 4, 0, changes=[(3, "gamma", 1.0)])
    assert command == f"python -m lossviz train {focal} --set gamma=3.0 --at 3:gamma=1.0 --steps 4 --seed 0"


def test_where_a_nan_was_born_forward_log(tmp_path):
    name = _file(tmp_path, "shifted.py", """
        from keras import ops


        def loss(y_true, y_pred, shift=0.5):
            return -ops.log(y_pred - shift)
    """)
    trainer = Trainer(name, seed=0, stop_on_nonfinite=True)
    list(trainer.run(5))
    assert nansource.nan_source(trainer) == "shifted.py:6: log(y_pred - shift) = nan (forward)"


def test_where_a_nan_was_born_pow_gradient():
    trainer = Trainer(EXAMPLES["focal"], {"gamma": 0.5, "lr": 0.5}, seed=0, stop_on_nonfinite=True)
    list(trainer.run(300))
    assert records.first_nonfinite(trainer.records) is not None
    found = nansource.nan_source(trainer)
    assert found.startswith("focal.py:") and "gradient of (1.0 - pt) ** gamma" in found and found.endswith(
        "(backward)"), found


def test_an_address_cannot_name_another_file(tmp_path):
    name = _file(tmp_path, "sq.py", SQUARED)
    usercode.load(name)
    other = str(tmp_path / "other.py")
    with pytest.raises(config.SettingError):
        links.from_query(name, {"loss": [other], "code": [other]})
    assert other not in usercode._LOADED  # nothing in a query loads a file
    with pytest.raises(config.SettingError, match="unknown demo"):
        links.from_query(other, {})


def test_code_files_come_from_the_command_line_and_the_environment():
    assert navigation.code_files(["examples/focal.py", "--runs", "x"], {"LOSSVIZ_CODE": "a.py:focal:b.py"}) == (
        "examples/focal.py", "a.py:focal", "b.py")


FILE_PAGE = """
from dashboard.page import code_page
code_page("{name}")
"""


def _page(name: str) -> AppTest:
    at = AppTest.from_string(FILE_PAGE.format(name=name), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_a_file_page_trains_and_says_where_the_nan_was_born(tmp_path):
    focal = EXAMPLES["focal"]
    at = _page(focal)
    assert at.title[0].value == "focal.py"
    assert {"gamma", "alpha"} <= {w.label.split(" ")[0] for w in at.sidebar.text_input}
    at.sidebar.number_input(key=f"{focal}:steps").set_value(60)
    at.sidebar.checkbox(key=f"{focal}:stop_nan").check()
    box = next(w for w in at.sidebar.text_input if w.label.startswith("lr"))
    box.set_value("0.5")
    gamma = next(w for w in at.sidebar.text_input if w.label.startswith("gamma"))
    gamma.set_value("0.5")
    at.run()
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    deadline = time.time() + 120
    while any(job.running for job in at.session_state["jobs"][focal].values()):
        assert time.time() < deadline
        time.sleep(0.2)
        at.run()
    at.run()
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "Where it was born: **focal.py:" in text and "(backward)" in text
    assert any(f"python -m lossviz train {focal}" in c.value for c in at.code)


def test_a_bad_file_page_is_an_error_box(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def loss(y_true, y_pred)\n")
    at = _page(str(path))
    assert [e.value for e in at.error] == [f"{path}:1: syntax error: expected ':'"]
