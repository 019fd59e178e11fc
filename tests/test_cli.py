"""The command line: CSV columns, non-finite cells, exit codes."""

import csv
import subprocess
import sys

import pytest

from lossviz.cli import main
from conftest import ROOT


def test_train_writes_one_row_per_step(tmp_path, capsys):
    out = tmp_path / "run.csv"
    code = main(["train", "sparse-penalty", "--set", "variant=naive", "--set", "penalty=10", "--set", "lr=0.05",
                 "--steps", "6", "--seed", "0", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6
    header = list(rows[0])
    assert header[:4] == ["step", "loss", "loss:positives", "loss:negatives"]
    for col in ("grad_norm", "grad_norm:dense_1", "nonfinite", "first_nonfinite", "metric:recall",
                "metric:precision", "metric:mean_pred"):
        assert col in header
    assert rows[2]["loss"] == "nan" and rows[2]["first_nonfinite"] == "loss"
    assert "first non-finite: step 3, in the loss" in capsys.readouterr().err


def test_train_two_branch_has_alpha_column(tmp_path):
    out = tmp_path / "run.csv"
    assert main(["train", "two-branch", "--set", "alpha=trainable", "--steps", "3", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert "alpha" in rows[0] and "loss:branch_1" in rows[0] and "loss:branch_2" in rows[0]


@pytest.mark.parametrize("args, words", [
    (["train", "nope"], "allowed: policy-value, two-branch, sparse-penalty, max-mse"),
    (["train", "sparse-penalty", "--set", "foo=1"], "allowed: lr, optimizer"),
    (["train", "sparse-penalty", "--set", "variant=x"], "one of naive, clipped, logits, batch-switch"),
    (["train", "sparse-penalty", "--set", "epsilon=0"], "(0, 0.5)"),
    (["train", "two-branch", "--set", "alpha=1.5"], "[0, 1], trainable, uncertainty, gradnorm or pcgrad"),
    (["train", "policy-value", "--set", "c=-1"], "c must be a number >= 0"),
    (["train", "policy-value", "--set", "mask=pi"], "one of logits, none, seed-answer"),
    (["train", "max-mse", "--set", "lr=nan"], "finite"),
    (["train", "max-mse", "--steps", "0"], ">= 1"),
    (["train", "max-mse", "--set", "lr"], "KEY=VALUE"),
    (["fly"], "invalid choice"),
    (["train", "sparse-penalty", "--at", "5:foo=1"], "unknown key 'foo'"),
    (["train", "sparse-penalty", "--at", "5:variant=naive"], "variant shapes the compiled graph"),
    (["train", "sparse-penalty", "--at", "500:lr=0.1", "--steps", "100"], "step 500 is past the run's 100 steps"),
    (["train", "sparse-penalty", "--at", "0:lr=0.1"], "STEP:KEY=VALUE with STEP an integer >= 1"),
    (["train", "sparse-penalty", "--at", "lr=0.1"], "STEP:KEY=VALUE"),
    (["train", "sparse-penalty", "--at", "5:penalty=-2"], "penalty must be a number > 0"),
    (["train", "two-branch", "--set", "alpha=trainable", "--at", "5:alpha=0.9"], "alpha shapes the compiled graph"),
])
def test_bad_input_exits_2_with_one_line(args, words):
    proc = subprocess.run([sys.executable, "-m", "lossviz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("lossviz: error:") and words in lines[0]
