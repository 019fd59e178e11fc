"""The code people bring (issue 27): every file of ``tests/corpus`` runs through ``train``, ``check --quick`` and
``landscape`` with the knobs its signature or constructor declares, and plain Keras 3 compiles and fits the same
file, computing the same loss as lossviz on the same model, weights and batch."""

import contextlib
import importlib.util
import inspect
import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import keras
import tensorflow as tf

from conftest import ROOT
from lossviz import cli, keras2, models, nansource, records, settings as config, usercode
from lossviz.training import Trainer

CORPUS = ROOT / "tests" / "corpus"
REGRESSION = {"task": "regression"}

# file -> (settings, the knobs its signature or constructor declares with their defaults, the graph-shaping ones)
FILES = {
    "decorated_pinball": (REGRESSION, {"tau": 0.5}, set()),
    "decorated_focal": ({}, {"alpha": 0.25, "gamma": 2.0}, {"alpha", "gamma"}),
    "wrapped_smooth_l1": (REGRESSION, {"beta": 1.0}, set()),
    "partial_quantile_huber": (REGRESSION, {"tau": 0.8, "kappa": 0.5}, set()),
    "decorated_nan": ({}, {"gamma": 2.0}, set()),
    "keras_focal_instance": ({}, {"alpha": 0.3, "gamma": 3.0, "label_smoothing": 0.0, "axis": -1},
                             {"label_smoothing", "axis"}),
    "keras_huber_instance": (REGRESSION, {"delta": 0.5}, set()),
    "keras_function": ({}, {"label_smoothing": 0.0, "axis": -1}, {"label_smoothing", "axis"}),
    "required_argument": ({}, {"pos_weight": 8.0, "epsilon": 1e-6}, set()),
    "derived_state": ({}, {"neg_weight": 1.0, "pos_weight": 30.0}, set()),
    "hidden_attribute": ({}, {}, set()),
    "subclass_nan": ({}, {"shift": 0.5}, set()),
    "one_hot_depth": ({}, {"num_classes": 3, "smoothing": 0.1}, {"num_classes"}),
    "range_order": ({}, {"order": 3, "epsilon": 1e-6}, {"order"}),
    "python_if": ({}, {"label_smoothing": 0.05}, set()),
    "segmentation_softmax": ({}, {"smooth": 1.0, "ce_weight": 0.5}, set()),
    "sequence_tagging": ({}, {"pad_weight": 0.0}, set()),
    "siamese_contrastive": ({}, {"margin": 1.0}, set()),
    "triplet_batch_hard": ({}, {"margin": 0.3}, set()),
    "two_view_ntxent": ({}, {"temperature": 0.5}, set()),
    "indexed_policy_value": ({}, {"value_weight": 1.0}, set()),
    "per_output_losses": ({}, {"value.delta": 0.5, "label.label_smoothing": 0.0, "label.axis": -1},
                          {"label.label_smoothing", "label.axis"}),
    "giou_boxes": ({}, {"eps": 1e-7}, set()),
    "keras2_tf_backend": ({}, {"pos_weight": 10.0}, set()),
    "prints_at_import": ({}, {"weight": 2.0}, set()),
    "inverse_mse_eps": (REGRESSION, {"eps": 1e-6}, set()),
}
# a loss over all outputs at once: Keras' way to train one is a Model whose compute_loss calls it
WHOLE = {"two_view_ntxent", "indexed_policy_value"}


def _path(name: str) -> str:
    return str(CORPUS / f"{name}.py")


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _sets(settings) -> list[str]:
    return [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]


def test_the_corpus_is_every_file():
    assert {p.stem for p in CORPUS.glob("*.py")} == set(FILES) | {"keras2_flatten"}
    assert len(FILES) >= 20


# ----------------------------------------------------------------------------- lossviz takes each file


@pytest.mark.parametrize("name", list(FILES))
def test_train_check_and_landscape_with_the_declared_knobs(name, tmp_path):
    settings, knobs, shaping = FILES[name]
    path = _path(name)
    code = usercode.load(path)
    assert code.loss.knobs == knobs
    for key, default in knobs.items():
        p = config.param(path, key)
        assert (p.kind, p.structural) == ("int" if isinstance(default, int) else "float", key in shaping), key
        assert type(p.default) is type(default)
        if key in shaping:
            assert re.match(rf"needs a Python value \({name}\.py:\d+: ", p.help), p.help
    run = tmp_path / "run.csv"
    moved = {k: (v + 1 if isinstance(v, int) else v * 0.5 or 0.25) for k, v in list(knobs.items())[:1]
             if k not in shaping}
    status, _, err = _cli("train", path, *_sets(settings), *_sets(moved), "--steps", 3, "--out", run)
    assert status == 0 and "Traceback" not in err, err
    table = pd.read_csv(run)
    assert list(table["step"]) == [1, 2, 3]
    for key, default in {**knobs, **moved}.items():
        assert table[f"set:{key}"].iloc[0] == pytest.approx(moved.get(key, default))
    status, out, err = _cli("check", path, *_sets(settings), "--quick", "--json")
    assert status in (0, 1) and "Traceback" not in err, err
    findings = json.loads(out)
    assert findings and all(f["severity"] in ("error", "warning", "info") for f in findings)
    land = tmp_path / "land.csv"
    status, _, err = _cli("landscape", path, *_sets(settings), "--steps", 2, "--resolution", 3, "--out", land)
    assert status == 0 and "Traceback" not in err, err
    assert len(pd.read_csv(land)) == 9


def test_a_graph_shaping_knob_keeps_its_kind_and_a_live_one_changes_without_retrace():
    path = _path("one_hot_depth")
    trainer = Trainer(path, {"num_classes": 3}, seed=0)
    first = list(trainer.run(2))
    traces = trainer.compiled.traces
    trainer.set(smoothing=0.3)
    later = list(trainer.run(2))
    assert trainer.compiled.traces == traces and later[-1]["set:smoothing"] == 0.3
    assert first[0]["set:num_classes"] == 3
    with pytest.raises(config.SettingError, match="num_classes shapes the compiled graph"):
        trainer.set(num_classes=4)
    assert config.resolve(path, {"num_classes": "4"})["num_classes"] == 4
    with pytest.raises(config.SettingError, match="num_classes must be an integer"):
        config.resolve(path, {"num_classes": "3.5"})


def test_a_loss_instance_whose_constructor_derives_its_state_is_rebuilt_with_the_knob():
    path = _path("derived_state")
    trainer = Trainer(path, {"pos_weight": 30.0}, seed=0)
    batch = trainer.data.take(np.arange(256))
    p = np.clip(trainer.forward(batch.inputs, training=True)["probability"].astype(np.float64), 1e-7, 1 - 1e-7)
    y = batch.targets["y"]

    def by_hand(neg, pos):  # numpy: the class-weighted BCE the file writes
        w = np.where(y > 0.5, pos, neg)
        return np.mean(-np.mean(w * (y * np.log(p) + (1 - y) * np.log(1 - p)), axis=-1))

    assert trainer.loss(batch) == pytest.approx(by_hand(1.0, 30.0), rel=1e-5)
    trainer.set(neg_weight=2.0)
    list(trainer.run(1))
    again = Trainer(path, {"neg_weight": 2.0, "pos_weight": 30.0}, seed=0)
    assert again.loss(batch) == pytest.approx(by_hand(2.0, 30.0), rel=1e-5)


def test_an_instance_that_hides_a_constructor_argument_is_used_as_given_and_says_so(tmp_path):
    path = _path("hidden_attribute")
    note = usercode.load(path).note
    assert config.spec(path).note == note
    assert "MarginRanking instance does not hold margin" in note
    status, _, err = _cli("train", path, "--set", "margin=0.1", "--steps", 2, "--out", tmp_path / "r.csv")
    lines = [line for line in err.splitlines() if line.startswith("lossviz:")]
    assert status == 2 and lines == [f"lossviz: note: {note}",
                                     f"lossviz: error: unknown key 'margin' for {path}; allowed: lr, optimizer, "
                                     f"batch_size, clipnorm, clipvalue, sharpness, task, metrics ({note})"]


def test_a_loss_per_output_gets_a_term_per_output():
    path = _path("per_output_losses")
    record = list(Trainer(path, {"value.delta": 0.25}, seed=0).run(2))[-1]
    assert config.terms(path) == ("value", "label")
    assert record["loss"] == pytest.approx(record["loss:value"] + record["loss:label"], rel=1e-5)
    assert record["set:value.delta"] == 0.25


def test_a_single_loss_on_a_multi_output_model_is_applied_to_each_output(tmp_path):
    (tmp_path / "each.py").write_text(
        "import numpy as np\nimport keras\n\nloss = keras.losses.MeanSquaredError()\n\n\ndef model():\n"
        "    x = keras.Input((4,))\n    return keras.Model(x, [keras.layers.Dense(1, name='a')(x), "
        "keras.layers.Dense(2, name='b')(x)])\n\n\ndef data(seed):\n"
        "    x = np.random.default_rng(seed).normal(size=(64, 4))\n"
        "    return x, [x[:, :1], x[:, 1:3]]\n")
    path = str(tmp_path / "each.py")
    code = usercode.load(path)
    assert config.terms(path) == ("a", "b") and "applied to each output" in code.note
    trainer = Trainer(path, seed=0)
    batch = trainer.data.take(np.arange(16))
    out = trainer.forward(batch.inputs, training=True)
    expected = sum(np.mean((out[f"y_pred{i}"] - batch.targets[f"y{i}"]) ** 2) for i in range(2))
    assert trainer.loss(batch) == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- plain Keras takes each file too


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"corpus_{name}", _path(name))
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


class WholeLoss(keras.Model):
    """Keras' way to train a loss of all outputs at once: ``compute_loss`` calls it on the whole structures."""

    def __init__(self, inner, fn):
        super().__init__()
        self.inner, self.fn = inner, fn

    def call(self, x, training=False):
        return self.inner(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return keras.ops.mean(self.fn(y, y_pred))


@pytest.mark.parametrize("name", list(FILES))
def test_plain_keras_fits_the_same_file_and_computes_the_same_loss(name):
    settings, _, _ = FILES[name]
    path = _path(name)
    code = usercode.load(path)
    trainer = Trainer(path, settings, seed=0)
    batch = trainer.data.take(np.arange(32))
    module = _module(name)
    if code.own_model:
        model = module.model()
        x, y = code.x_nest.unflatten(batch.inputs), code.y_nest.unflatten(batch.targets)
        x_all, y_all = code.x_nest.unflatten(trainer.data.inputs), code.y_nest.unflatten(trainer.data.targets)
    else:  # lossviz's own net and data, with its prediction as the model's one output
        net = models.sparse_penalty() if settings.get("task", "binary") == "binary" else models.max_mse()
        model = keras.Model(net.input, net.output["probability" if "probability" in net.output else "y"])
        x, y, x_all, y_all = batch.inputs, batch.targets["y"], trainer.data.inputs, trainer.data.targets["y"]
    assert [tuple(v.shape) for v in model.trainable_weights] == [np.shape(w) for w in trainer.weights()]
    for variable, value in zip(model.trainable_weights, trainer.weights()):
        variable.assign(value)
    loss = module.loss() if inspect.isclass(module.loss) else module.loss
    knobs = {k: v for k, v in settings.items() if k != "task"}
    assert not knobs  # the corpus runs at the file's own values
    if name in WHOLE:
        model = WholeLoss(model, loss)
        model.compile(optimizer="adam", jit_compile=False)
    else:
        model.compile(optimizer="adam", loss=loss, jit_compile=False)
    with contextlib.redirect_stdout(io.StringIO()):
        keras_loss = float(model.compute_loss(x, y, model(x, training=True)))
        model.fit(x_all, y_all, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0)
    lossviz_loss = trainer.loss(batch)
    if name == "subclass_nan":  # its log is NaN by design, for Keras as for lossviz
        assert math.isnan(keras_loss) and math.isnan(lossviz_loss)
    else:
        assert lossviz_loss == pytest.approx(keras_loss, rel=1e-5, abs=1e-7)


# ----------------------------------------------------------------------------- what lossviz says about them


def test_where_the_nan_was_born_behind_tf_function_and_in_a_loss_subclass():
    trainer = Trainer(_path("decorated_nan"), {"gamma": 0.5, "lr": 0.5}, seed=0, stop_on_nonfinite=True)
    trainer.advance(300)
    assert records.first_nonfinite(trainer.records) is not None
    found = nansource.nan_source(trainer)
    assert found.startswith("decorated_nan.py:9: gradient of pow(1.0 - pt, gamma)") and found.endswith("(backward)")
    trainer = Trainer(_path("subclass_nan"), seed=0, stop_on_nonfinite=True)
    trainer.advance(5)
    assert nansource.nan_source(trainer) == "subclass_nan.py:13: log(y_pred - self.shift) = nan (forward)"


def test_a_file_that_prints_keeps_check_json_pure(tmp_path):
    path = tmp_path / "talks.py"  # a copy: imported afresh here, whatever ran before
    path.write_text((CORPUS / "prints_at_import.py").read_text())
    status, out, err = _cli("check", path, "--quick", "--json")
    assert status in (0, 1)
    assert [f["id"] for f in json.loads(out)]  # the whole of standard output is the JSON
    assert "loading my loss..." in err and "tracing the loss" in err


def test_a_bounded_but_enormous_gradient_is_a_warning_with_its_evidence():
    from lossviz import checkup
    from lossviz.checkup import edges, heads, runs

    path = _path("inverse_mse_eps")
    found = checkup.check(path, REGRESSION, quick=True)
    finding = next(f for f in found if f.id == "exploding-gradient")
    assert finding.severity == "warning" and finding.evidence["growth"] >= 1e3
    # numpy: d/dz of 1 / ((s(z) - y)^2 + eps) per sample = -2 (s - y) s' / ((s - y)^2 + eps)^2, at z = logit(y) + d
    trainer = Trainer(path, REGRESSION, seed=0)
    at = heads.LossAt(trainer, runs.sample(trainer.data, checkup.EDGE_BATCH, 0))
    y = at.batch.targets["y"].astype(np.float64)
    side = np.where(at.z0["y"] >= heads.perfect_z(at.head("y"), y)[0], 1.0, -1.0)

    def norm(d):
        s = 1 / (1 + np.exp(-(np.log(y) - np.log1p(-y) + d * side)))
        return np.mean(np.abs(-2 * (s - y) * s * (1 - s) / ((s - y) ** 2 + 1e-6) ** 2))

    assert finding.evidence["gradient_far"] == pytest.approx(norm(edges.FAR), rel=0.05)
    assert finding.evidence["peak"] == pytest.approx(norm(finding.evidence["at_distance"]), rel=0.05)
    clean = checkup.check(path, {**REGRESSION, "eps": 1e-2}, quick=True)
    assert "exploding-gradient" not in {f.id for f in clean}


def test_the_check_up_runs_on_per_pixel_and_indexed_outputs_and_says_why_it_skips_one():
    from lossviz import checkup

    found = checkup.check(_path("segmentation_softmax"), quick=True)
    assert not any("Traceback" in f.message for f in found)
    at = checkup.LossAt(Trainer(_path("segmentation_softmax"), seed=0),
                        Trainer(_path("segmentation_softmax"), seed=0).data.take(np.arange(8)))
    assert [(h.kind, h.target, h.target_kind) for h in at.heads] == [("softmax", "y", "one-hot")]
    ntxent = Trainer(_path("two_view_ntxent"), seed=0)  # both outputs (n, 12): matched by their place
    at = checkup.LossAt(ntxent, ntxent.data.take(np.arange(8)))
    assert [(h.key, h.target) for h in at.heads] == [("y_pred0", "y0"), ("y_pred1", "y1")]
    triplet = checkup.check(_path("triplet_batch_hard"), quick=True)
    skipped = [f for f in triplet if f.severity == "info" and f.evidence.get("output") == "y_pred"]
    assert len(skipped) == 1 and "Output y_pred is (n, 16) and no target has that shape" in skipped[0].message


# ----------------------------------------------------------------------------- Keras 2 code


def _resolve(dotted: str):
    module, *names = dotted.split(".")
    obj = importlib.import_module(module)
    for name in names:
        obj = getattr(obj, name)
    return obj


def test_every_keras2_backend_function_has_a_keras3_equivalent_that_exists():
    for name, fix in keras2.EQUIVALENTS.items():
        dotted = re.findall(r"\b(?:keras|tensorflow)(?:\.\w+)*", fix)
        assert dotted, (name, fix)
        for found in dotted:
            _resolve(found)  # raises for a name Keras 3 (or TensorFlow) does not have
    assert keras2.EQUIVALENTS["flatten"] == "keras.ops.reshape(x, [-1])"
    assert keras2.EQUIVALENTS["variable"] == "keras.Variable"
    assert keras2.EQUIVALENTS["epsilon"] == "keras.config.epsilon()"
    assert keras2.EQUIVALENTS["int_shape"].startswith("x.shape")
    assert keras2.EQUIVALENTS["set_value"].startswith("variable.assign")


def test_keras2_backend_code_names_its_equivalent_or_keeps_working(tmp_path):
    status, _, err = _cli("train", _path("keras2_flatten"), "--steps", 2, "--out", tmp_path / "r.csv")
    assert status == 2 and err.strip().splitlines()[-1] == (
        f"lossviz: error: {_path('keras2_flatten')}:8: K.flatten is a Keras 2 backend function, gone in Keras 3: use "
        f"keras.ops.reshape(x, [-1]) (calling the loss)")
    (tmp_path / "imports.py").write_text("from keras.backend import variable\n\n\ndef loss(y_true, y_pred):\n"
                                         "    return (y_true - y_pred) ** 2\n")
    status, _, err = _cli("train", tmp_path / "imports.py", "--steps", 2, "--out", tmp_path / "r.csv")
    assert status == 2 and "imports.py:1: K.variable is a Keras 2 backend function, gone in Keras 3: use " \
                           "keras.Variable" in err
    assert usercode.load(_path("keras2_tf_backend")).loss.knobs == {"pos_weight": 10.0}  # tf.keras.backend works


# ----------------------------------------------------------------------------- their pages (AppTest), a sample

FILE_PAGE = """
from dashboard.page import code_page
code_page({name!r})
"""


def _page(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(FILE_PAGE.format(name=_path(name)), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _press(at, label: str) -> None:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception


def _box(at, value_key: str):
    """The current instance of a knob's exact-value box (its key carries a version: see dashboard.controls)."""
    return next(w for w in at.sidebar.text_input if w.key and w.key.startswith(f"{value_key}:box:"))


@pytest.mark.parametrize("name", ["decorated_focal", "one_hot_depth", "per_output_losses", "hidden_attribute"])
def test_a_file_page_has_its_knobs_trains_and_offers_reset_for_a_graph_shaping_one(name):
    path = _path(name)
    settings, knobs, shaping = FILES[name]
    at = _page(name)
    assert set(knobs) <= {w.label.split(" ")[0] for w in at.sidebar.text_input}
    if usercode.load(path).note:
        assert usercode.load(path).note in [i.value for i in at.info]
    _press(at, "Step")
    job = at.session_state["jobs"][path]["A"]
    job.wait()
    if shaping:  # a graph-shaping knob cannot change mid-run: the page says so and offers Reset
        key = sorted(shaping)[0]
        _box(at, f"{path}:{key}").set_value(str(knobs[key] + 1)).run()
        assert not at.exception
        warning = " ".join(w.value for w in at.warning)
        assert key in warning and "Reset" in warning
    else:
        assert job.trainer.step > 0 and not at.error
