"""Runs from anywhere: reading lossviz CSVs (kinds, bad input, a growing file, the folder's walls), TensorBoard's
smoothing, the Keras Recorder, and the Runs page."""

import math
import os

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, train_csv as _train_csv
from lossviz import charts, records, runfiles
from lossviz.runfiles import RunFileError


# ----------------------------------------------------------------------------- smoothing

def test_smoothing_is_tensorboard_s_debiased_ema_and_keeps_nan_out():
    values = [1.0, 3.0, float("nan"), 2.0, float("inf"), 5.0]
    w = 0.6
    last, n, expected = 0.0, 0, []
    for v in values:  # TensorBoard's loop, by hand
        if not math.isfinite(v):
            expected.append(v)
            continue
        last = last * w + (1 - w) * v
        n += 1
        expected.append(last / (1 - w ** n))
    got = charts.smooth(values, w)
    np.testing.assert_allclose(got[[0, 1, 3, 5]], np.array(expected)[[0, 1, 3, 5]], rtol=1e-12)
    assert math.isnan(got[2]) and got[4] == math.inf
    np.testing.assert_array_equal(charts.smooth([2.0, 2.0, 2.0], 0.9), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(charts.smooth(values, 0.0)[[0, 1, 3]], [1.0, 3.0, 2.0])


# ----------------------------------------------------------------------------- reading files

def test_kinds_from_the_columns():
    train = runfiles.parse(_train_csv().encode(), "a.csv")
    assert train.kind == "train" and not train.recorder and train.settings == {"lr": 0.01}
    sweep = runfiles.parse(b"lr,status,final_loss,best_loss,first_nonfinite_step,steps\n0.1,diverged,nan,1.0,3,3\n"
                           b"0.01,ok,0.5,0.4,,100\n", "s.csv")
    assert sweep.kind == "sweep" and sweep.table["final_loss"].isna().iloc[0]
    landscape = runfiles.parse(b"alpha,beta,loss\n0,0,1\n1,0,inf\n0,1,2\n1,1,3\n", "l.csv")
    assert landscape.kind == "landscape" and landscape.table["loss"].iloc[1] == math.inf


@pytest.mark.parametrize("data, words", [
    (b"x,y\n1,2\n", "l.csv: not a lossviz CSV (a landscape file would have the columns alpha, beta, loss)"),
    (b"step,loss\n1,0.5\n2,0.4,9\n", "l.csv: row 3 has 3 fields, the header has 2"),
    (b"step,loss\n1,\xff\xfe\n", "l.csv: not UTF-8 text (byte 12): a lossviz CSV is UTF-8"),
    (b"", "l.csv: the file is empty"),
    (b"step,loss\n1,abc\n", "l.csv: row 2: loss is 'abc', not a number"),
    (b"step,loss\n1,0.5\n\n2\n", "l.csv: row 3 has 1 fields, the header has 2"),  # a blank line is no row
    (b'lr,status,final_loss,best_loss,steps,message\n0.1,diverged,nan,1,3,"NaN at step 3, in the loss"\n'
     b'0.01,ok,0.5,0.4,100\n', "l.csv: row 3 has 5 fields, the header has 6"),  # a quoted comma is no field
])
def test_bad_files_get_one_line_naming_the_file(data, words):
    with pytest.raises(RunFileError) as found:
        runfiles.parse(data, "l.csv")
    assert str(found.value) == words


def test_a_file_over_the_limit_and_a_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(runfiles, "MAX_BYTES", 100)
    with pytest.raises(RunFileError, match=r"big.csv: 0 MiB is larger than the 0 MiB limit"):
        runfiles.parse(b"step,loss\n" + b"1,0.5\n" * 30, "big.csv")
    with pytest.raises(RunFileError, match="no such folder"):
        runfiles.listing(tmp_path / "nowhere")


def test_a_path_never_leaves_the_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "secret.csv").write_text(_train_csv())
    (tmp_path / "runs" / "ok.csv").write_text(_train_csv())
    os.symlink(tmp_path / "secret.csv", tmp_path / "runs" / "link.csv")
    for bad in ("../secret.csv", str(tmp_path / "secret.csv"), "link.csv", "sub/../../secret.csv", ""):
        with pytest.raises(RunFileError):
            runfiles.inside(tmp_path / "runs", bad)
    assert runfiles.listing(tmp_path / "runs") == ["ok.csv"]
    with pytest.raises(RunFileError):
        runfiles.Tail(str(tmp_path / "runs"), "../secret.csv").read()


def test_a_growing_file_is_read_by_its_new_lines(tmp_path):
    path = tmp_path / "live.csv"
    lines = _train_csv(12).splitlines(keepends=True)
    path.write_text("".join(lines[:4]))
    tail = runfiles.Tail(str(tmp_path), "live.csv")
    assert len(tail.read().table) == 3
    with open(path, "a") as f:
        f.write(lines[4] + lines[5][:10])  # a row still being written
    assert len(tail.read().table) == 4
    with open(path, "a") as f:
        f.write(lines[5][10:] + "".join(lines[6:]))
    run = tail.read()
    assert len(run.table) == 12 and run.table["step"].tolist() == list(range(1, 13))
    np.testing.assert_array_equal(run.table["loss"], runfiles.parse(path.read_bytes(), "x").table["loss"])


def test_a_long_file_is_read_by_chunks_into_bounded_rows(tmp_path, monkeypatch):
    """A file longer than the rows kept (here 400) is read a chunk at a time (here 1 kB, then 10 bytes: shorter than
    a line); the rows kept are thinned as a live run's log is, the counts are of every row read."""
    monkeypatch.setattr(runfiles, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(runfiles, "MAX_ROWS", 400)
    monkeypatch.setattr(runfiles, "RECENT_ROWS", 100)
    text = _train_csv(2000, nan_at=700)  # lr x10 from step 1000 on
    (tmp_path / "long.csv").write_text(text)
    rows = runfiles.Tail(str(tmp_path), "long.csv").read().rows
    assert rows.total == 2000 and rows.nonfinite_total == 1301 and 100 < len(rows) <= 400
    steps = rows.column("step").tolist()
    assert {1, 700, 999, 1000} <= set(steps) and steps[-100:] == list(range(1901, 2001))
    assert steps == sorted(steps) and rows.thinned == 2000 - len(rows)
    every = pd.read_csv(tmp_path / "long.csv").set_index("step")  # the kept rows hold the file's numbers
    np.testing.assert_array_equal(rows.column("loss"), every.loc[steps, "loss"].to_numpy())
    np.testing.assert_array_equal(rows.column("set:lr"), every.loc[steps, "set:lr"].to_numpy())
    drawn = records.window(rows, recent=50, older=10)
    assert drawn["step"].iloc[-1] == 2000 and 700 in drawn["step"].tolist()  # the first NaN is drawn
    assert records.knob_changes(drawn) == [(1000, "lr", 0.01, 0.1)]  # ... and the knob change, exactly
    monkeypatch.setattr(runfiles, "CHUNK_BYTES", 10)  # a chunk shorter than every line
    (tmp_path / "short.csv").write_text(_train_csv(50))
    assert runfiles.Tail(str(tmp_path), "short.csv").read().rows.column("step").tolist() == list(range(1, 51))


def test_listing_is_newest_first(tmp_path):
    for i, name in enumerate(["old.csv", "mid.csv", "new.csv"]):
        (tmp_path / name).write_text(_train_csv())
        os.utime(tmp_path / name, (1_000_000 + i, 1_000_000 + i))
    assert runfiles.listing(tmp_path) == ["new.csv", "mid.csv", "old.csv"]


# ----------------------------------------------------------------------------- the Keras callback

def _two_outputs():
    import keras
    from keras import layers

    x_in = keras.Input((6,), name="x")
    h = layers.Dense(8, activation="relu", name="trunk")(x_in)
    model = keras.Model(x_in, {"reg": layers.Dense(1, name="reg")(h),
                               "cls": layers.Dense(3, activation="softmax", name="cls")(h)})
    return model


def test_recorder_columns_and_update_norms_equal_weight_differences(tmp_path):
    import keras
    import lossviz

    keras.utils.set_random_seed(0)
    model = _two_outputs()
    model.compile(keras.optimizers.SGD(0.05), {"reg": "mse", "cls": "categorical_crossentropy"},
                  metrics={"cls": ["accuracy"]})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = {"reg": x[:, :1], "cls": np.eye(3, dtype="float32")[np.arange(64) % 3]}

    class Weights(keras.callbacks.Callback):  # numpy copies of the trunk's weights around every batch
        def __init__(self):
            super().__init__()
            self.before, self.after = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.before.append([np.array(w) for w in model.get_layer("trunk").weights])

        def on_train_batch_end(self, batch, logs=None):
            self.after.append([np.array(w) for w in model.get_layer("trunk").weights])

    seen = Weights()
    recorder = lossviz.keras.Recorder(tmp_path / "fit.csv")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[seen, recorder])
    run = runfiles.parse((tmp_path / "fit.csv").read_bytes(), "fit.csv")
    assert run.kind == "train" and run.recorder and len(run.table) == 8
    t = run.table
    assert {"loss", "loss:reg", "loss:cls", "metric:cls_accuracy", "lr", "weight_norm:trunk", "update_norm:trunk",
            "update_norm", "nonfinite", "first_nonfinite", "nonfinite_in"} <= set(t.columns)
    assert t["lr"].iloc[0] == pytest.approx(0.05)
    for i in range(8):  # numpy: the norm of the trunk's weights' change over each batch
        change = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(seen.after[i], seen.before[i])))
        assert t["update_norm:trunk"].iloc[i] == pytest.approx(change, rel=1e-4)
        norm = math.sqrt(sum(float(np.sum(a ** 2)) for a in seen.after[i]))
        assert t["weight_norm:trunk"].iloc[i] == pytest.approx(norm, rel=1e-5)
    assert (t["nonfinite"] == 0).all()
    function = model.train_function
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[recorder])  # again
    assert model.train_function is function  # the measuring step is reused, not compiled again
    assert set(history.history) == {"loss", "reg_loss", "cls_loss", "cls_accuracy"}  # no callback sees the row
    again = runfiles.parse((tmp_path / "fit.csv").read_bytes(), "fit.csv").table
    assert again["step"].tolist() == list(range(1, 13))  # appended, the steps counting on
    model.compile(keras.optimizers.SGD(0.01), {"reg": "mse", "cls": "categorical_crossentropy"})  # compiled again,
    other = lossviz.keras.Recorder(tmp_path / "other.csv")  # then a second Recorder: each installs on the original
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[other])
    assert model.train_step.__wrapped__ is model._lossviz_train_step
    t = runfiles.parse((tmp_path / "other.csv").read_bytes(), "other.csv").table
    assert t["step"].tolist() == [1, 2, 3, 4] and t["lr"].iloc[0] == pytest.approx(0.01)


def test_recorder_names_the_first_weight_that_blew_up_and_stops(tmp_path):
    import keras
    import lossviz

    keras.utils.set_random_seed(0)
    model = _two_outputs()
    model.compile(keras.optimizers.SGD(1e30), {"reg": "mse", "cls": "categorical_crossentropy"})
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32") * 100
    y = {"reg": x[:, :1] * 1e3, "cls": np.eye(3, dtype="float32")[np.arange(64) % 3]}
    recorder = lossviz.keras.Recorder(tmp_path / "boom.csv", stop_on_nonfinite=True)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[recorder])
    t = runfiles.parse((tmp_path / "boom.csv").read_bytes(), "boom.csv").table
    first = recorder.first_nonfinite
    assert first is not None and len(t) == first["step"] < 12  # stopped at the step it recorded
    assert t["nonfinite"].iloc[-1] > 0 and (t["nonfinite"].iloc[:-1] == 0).all()
    assert first["nonfinite_in"] in ("loss", "weight")
    if first["nonfinite_in"] == "weight":
        assert first["first_nonfinite"] in [w.path for w in model.weights]
    # the count: the loss (if it is NaN/inf) and every NaN/inf entry of the weights as the fit left them
    entries = sum(int(np.count_nonzero(~np.isfinite(np.asarray(w)))) for w in model.weights)
    assert t["nonfinite"].iloc[-1] == entries + (0 if math.isfinite(t["loss"].iloc[-1]) else 1)


def test_recorder_counts_no_nonfinite_in_huge_finite_weights(tmp_path):
    """A kernel of 1e20 everywhere: its sum of squares overflows float32 (the norm is inf), but no entry is NaN/inf."""
    import keras
    import lossviz

    keras.utils.set_random_seed(0)
    model = _two_outputs()
    model.compile(keras.optimizers.SGD(0.0), {"reg": "mse", "cls": "categorical_crossentropy"})
    trunk = model.get_layer("trunk")
    trunk.kernel.assign(np.full(trunk.kernel.shape, 1e20, "float32"))
    x = np.zeros((32, 6), "float32")  # the trunk's output is 0 however large its kernel
    y = {"reg": x[:, :1], "cls": np.eye(3, dtype="float32")[np.arange(32) % 3]}
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[lossviz.keras.Recorder(tmp_path / "big.csv")])
    t = runfiles.parse((tmp_path / "big.csv").read_bytes(), "big.csv").table
    assert np.isinf(t["weight_norm:trunk"]).all() and np.isfinite(t["loss"]).all()
    assert (t["nonfinite"] == 0).all() and (t["first_nonfinite"].fillna("") == "").all()


# ----------------------------------------------------------------------------- the page

def test_runs_page_draws_every_kind_from_the_folder(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text(_train_csv(40, nan_at=35))
    (tmp_path / "b.csv").write_text(_train_csv(30, probe=False))
    (tmp_path / "sweep.csv").write_text("lr,penalty,status,final_loss,best_loss,first_nonfinite_step,steps\n"
                                        "0.1,1,diverged,nan,1.0,3,3\n0.01,1,ok,0.5,0.4,,100\n"
                                        "0.1,10,stalled,0.9,0.9,,100\n0.01,10,ok,0.3,0.3,,100\n")
    (tmp_path / "land.csv").write_text("alpha,beta,loss\n0,0,1\n1,0,inf\n0,1,2\n1,1,3\n")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    (tmp_path / "fit.csv").write_text(  # as lossviz.keras.Recorder writes it
        "step,loss,loss:out,metric:accuracy,lr,weight_norm:dense,update_norm:dense,update_norm,nonfinite,"
        "first_nonfinite,nonfinite_in\n1,0.9,0.9,0.5,0.01,3.0,0.1,0.1,0,,\n2,0.8,0.8,0.6,0.01,3.1,0.09,0.09,0,,\n"
        "3,nan,nan,0.6,0.01,inf,inf,inf,2,dense/kernel,weight\n")
    for i, name in enumerate(["fit.csv", "bad.csv", "land.csv", "sweep.csv", "b.csv", "a.csv"]):
        os.utime(tmp_path / name, (1_000_000 + i, 1_000_000 + i))  # not growing: drawn once
    monkeypatch.setenv("LOSSVIZ_RUNS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "pages/6_Runs.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.multiselect(key="runs:chosen").value == ["a.csv", "b.csv"]  # the two newest
    assert any("a.csv: first NaN/inf at step 35" in w.value.replace("**", "") for w in at.warning)
    charts_before = len(at.get("plotly_chart"))
    assert charts_before >= 5  # loss, gradient norm, metrics, a heatmap per run, the anatomy
    at.slider(key="runs:smoothing").set_value(0.9)
    at.multiselect(key="runs:chosen").set_value(["a.csv", "sweep.csv", "land.csv", "bad.csv", "fit.csv"])
    at.run()
    assert not at.exception
    assert any("bad.csv: not a lossviz CSV" in e.value for e in at.error)
    assert any("Sweep: sweep.csv" in s.value for s in at.subheader)
    assert any("Landscape: land.csv" in s.value for s in at.subheader)
    assert any("Recorded with lossviz.keras.Recorder" in s.value for s in at.subheader)
    assert any("A callback sees no gradients" in c.value for c in at.caption)
    assert any("fit.csv: first NaN/inf at step 3, in the weight (dense/kernel)" in w.value.replace("**", "")
               for w in at.warning)
    # the file grows while the page watches it: the next redraw reads the new rows
    steps = lambda: at.dataframe[0].value.set_index("run").loc["a.csv", "steps"]  # noqa: E731
    assert steps() == "40"
    with open(tmp_path / "a.csv", "a") as f:
        f.write("".join(_train_csv(45).splitlines(keepends=True)[41:46]))
    at.run()
    assert steps() == "45"


def test_dashboard_command_bad_usage_and_its_streamlit_flags(capsys, tmp_path, monkeypatch):
    from dashboard import navigation
    from lossviz import cli

    monkeypatch.chdir(ROOT)  # relative paths are made absolute from here

    assert cli.main(["dashboard", "nope.py"]) == 2
    assert capsys.readouterr().err.strip() == "lossviz: error: nope.py: not a .py file"
    assert cli.main(["dashboard", "--runs", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere: no such folder")
    command = cli.dashboard_command(["examples/focal.py:loss"], str(tmp_path), 8600)
    assert command[command.index("--server.fileWatcherType") + 1] == "none"
    assert command[command.index("--runner.postScriptGC") + 1] == "false"
    assert command[-3:] == [str(ROOT / "examples" / "focal.py") + ":loss", "--runs", str(tmp_path)]
    assert navigation.runs_folder(command[command.index("--") + 1:], {}) == str(tmp_path)
    assert navigation.runs_folder([], {"LOSSVIZ_RUNS": "/data/runs"}) == "/data/runs"
    assert navigation.runs_folder([], {}) is None
