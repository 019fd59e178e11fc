"""Runs shared as one file: ``python -m lossviz report`` and ``lossviz.report``, standalone and drawn offline."""

import contextlib
import io
import re

import pytest

import lossviz
from conftest import train_csv
from lossviz import cli, html_report

SWEEP = ("lr,penalty,status,final_loss,best_loss,first_nonfinite_step,steps\n"
         "0.1,1,diverged,nan,1.0,3,3\n0.01,1,ok,0.5,0.4,,100\n0.1,10,stalled,0.9,0.9,,100\n0.01,10,ok,0.3,0.3,,100\n")
LANDSCAPE = "alpha,beta,loss\n0,0,1\n1,0,inf\n0,1,2\n1,1,3\n"
FIT = ("step,loss,loss:out,metric:accuracy,lr,weight_norm:dense,update_norm:dense,update_norm,nonfinite,"  # a Recorder's
       "first_nonfinite,nonfinite_in\n1,0.9,0.9,0.5,0.01,3.0,0.1,0.1,0,,\n2,0.8,0.8,0.6,0.01,3.1,0.09,0.09,0,,\n")


def _cli(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, err.getvalue()


@pytest.fixture
def csvs(tmp_path):
    files = {"a.csv": train_csv(40, nan_at=35), "b.csv": train_csv(30, lr=0.1), "sweep.csv": SWEEP,
             "land.csv": LANDSCAPE, "fit.csv": FIT}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


def _figures(text: str) -> int:
    return len(re.findall(r'<div id="chart-\d+"', text))


def test_a_report_of_every_kind_is_one_standalone_file(csvs, tmp_path):
    out = tmp_path / "report.html"
    code, err = _cli("report", *csvs.values(), "--out", out)
    assert code == 0, err
    text = out.read_text()
    assert not re.search(r"<script[^>]+src=", text) and "<link" not in text  # nothing fetched: plotly.js is inline
    assert "plotly" in text[:5_000_000] and text.count("<h2>") == 4  # train runs, the Recorder, a sweep, a landscape
    # the train runs overlaid (loss, grad norm, metrics, a heatmap each, the two anatomy charts), the fit's four,
    # the stability map, the contour and the surface
    assert _figures(text) == 3 + 2 + 2 + 4 + 1 + 2
    assert "a.csv" in text and "lr=0.1" in text and "35" in text  # its row: the first NaN at step 35


def test_a_report_names_the_command_written_beside_a_train_csv(tmp_path):
    run = tmp_path / "run.csv"
    code, err = _cli("train", "max-mse", "--set", "lr=0.02", "--steps", 12, "--out", run)
    assert code == 0, err
    found = lossviz.report([run])
    assert found.shared[0].command == "python -m lossviz train max-mse --set lr=0.02 --steps 12 --seed 0"
    assert "python -m lossviz train max-mse --set lr=0.02 --steps 12 --seed 0" in found._repr_html_()


@pytest.mark.parametrize("name, text, words", [
    ("other.csv", "x,y\n1,2\n", "other.csv: not a lossviz CSV"),
    ("empty.csv", "", "empty.csv: the file is empty"),
    ("missing.csv", None, "missing.csv: No such file or directory"),
])
def test_a_file_that_is_not_lossviz_s_is_one_line_and_exit_2(tmp_path, name, text, words):
    if text is not None:
        (tmp_path / name).write_text(text)
    code, err = _cli("report", tmp_path / name, "--out", tmp_path / "r.html")
    assert code == 2 and err.count("\n") == 1 and words in err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.html.part").exists()


def test_a_hostile_file_name_and_cell_are_shown_not_run(tmp_path):
    name = tmp_path / "<script>alert(1)<"
    name.mkdir()
    path = name / "x.csv"
    path.write_text(train_csv(5))
    found = html_report.report([path], title="<b>class</b>")
    text = found.html()
    assert "<b>class</b>" not in text and "&lt;b&gt;class&lt;/b&gt;" in text


def test_the_report_draws_its_charts_offline_in_chromium(csvs, tmp_path):
    from test_browser import require_chromium
    from dashboard import server as dashboard_server
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    assert _cli("report", *csvs.values(), "--out", out)[0] == 0
    expected = _figures(out.read_text())
    fetched = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_chromium(), headless=True,
                                    args=dashboard_server.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (fetched.append(route.request.url), route.abort()))
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.locator(".js-plotly-plot").nth(expected - 1).wait_for(timeout=60_000)
        assert page.locator(".js-plotly-plot").count() == expected
        assert page.locator(".main-svg").count() >= expected  # drawn, not only placed
        browser.close()
    assert not fetched and not errors
