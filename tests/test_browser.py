"""The dashboard in a real headless Chromium: every page trains and draws, with no exception box.

Starts ``streamlit run app.py`` on a free local port and drives Debian's Chromium with Playwright.
Screenshots go to ``test-artifacts/`` (the ones in ``docs/`` were taken this way). The server's life (many
sessions, a slow client, a closed tab, SIGTERM, a fresh start) is tested in ``test_browser_server.py``.
"""

import os
import re
import urllib.parse

import pytest
from playwright.sync_api import expect

from conftest import ROOT, train_csv
from dashboard import server as dashboard_server
from dashboard.server import CHROMIUM

ARTIFACTS = ROOT / "test-artifacts"
PAGES = {"home": "", "policy_value": "Policy_value", "two_branch": "Two_branch",
         "sparse_penalty": "Sparse_penalty", "max_mse": "Max_MSE"}


def require_chromium(path: str = CHROMIUM) -> str:
    """Chromium's path; without it the browser tests skip with one line, except under CI (``CI`` set), where
    they must run and fail loudly."""
    if os.path.exists(path):
        return path
    message = f"Chromium is missing at {path}: apt-get install chromium (.ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(message + "; under CI the browser tests must run")
    pytest.skip(message)


def _start_server(env: dict[str, str] | None = None):
    try:
        return dashboard_server.start(env)
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    runs = tmp_path_factory.mktemp("runs")  # the Runs page's folder: two runs of 300 steps
    (runs / "lr_0.01.csv").write_text(train_csv(300, lr=0.01))
    (runs / "lr_0.1.csv").write_text(train_csv(250, nan_at=240, lr=0.1))
    # a file of your own code gets a page; this server runs the XLA step, as a user's does (see conftest.py)
    proc, url = _start_server({"LOSSVIZ_CODE": "examples/focal.py", "LOSSVIZ_RUNS": str(runs), "LOSSVIZ_XLA": "1"})
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=dashboard_server.CHROMIUM_ARGS)
        yield b
        b.close()


def _wait_or_show(page, text: str, name: str, timeout: int = 120_000) -> None:
    """Wait for ``text``; on a time-out, fail with a screenshot and what the page says (for a CI log)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(text).first.wait_for(timeout=timeout)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-timeout.png"), full_page=True)
        pytest.fail(f"{text!r} did not appear; the page says: " + page.inner_text("body")[-1500:])


def _no_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0


def test_home_page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 4600})
    page.goto(server)
    page.get_by_text("Open Sparse-penalty binary cross-entropy").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    _no_exception(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_text("Home", exact=True).count() == 1 and nav.get_by_text("app", exact=True).count() == 0
    assert nav.get_by_text("Your loss (a formula)", exact=True).count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    page.close()


def _type(page, box, value: str) -> None:
    """Type a value into a box. Nothing to wait for: the next click (Train) sends every widget's value with it,
    and the server applies them before the click's own callback."""
    box.fill(value)
    box.press("Enter")


@pytest.mark.parametrize("name", [k for k in PAGES if k != "home"])
def test_page_trains_and_draws(server, browser, name):
    page = browser.new_page(viewport={"width": 1400, "height": 4600})
    page.goto(f"{server}/{PAGES[name]}")
    page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
    _type(page, page.get_by_label("steps", exact=True), "120")
    if name == "sparse_penalty":  # the question's failure: compare the hand-written loss at lr = 0.05
        _type(page, page.get_by_role("textbox", name="lr value"), "0.05")
        page.get_by_text("train a second run B").click()
        page.get_by_text("setting to change").wait_for(timeout=30_000)  # B's controls are drawn
    page.get_by_role("button", name="Train", exact=True).click()
    _wait_or_show(page, "Download A as CSV", name)
    if name == "sparse_penalty":
        page.get_by_text("first NaN/inf at step 3, in the loss").wait_for(timeout=30_000)
        page.get_by_text("Download B as CSV").wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").nth(4).wait_for(timeout=30_000)
    _no_exception(page)
    assert page.get_by_text("120 / 120 steps").count() >= 1
    if name != "max_mse":  # a loss with terms: each term's own gradient, after the run
        page.get_by_role("heading", name="Gradient anatomy").wait_for(timeout=30_000)
        page.get_by_text("Share of each layer's gradient").first.wait_for(timeout=30_000)
    if name == "max_mse":  # a stability map over the default grid: lr (4 values) x variant (3)
        steps_per_run = page.get_by_label("steps per run", exact=True)
        steps_per_run.fill("60")
        steps_per_run.press("Enter")
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Sweep", exact=True).click()
        page.get_by_text("12 of 12 runs").first.wait_for(timeout=180_000)
        page.get_by_text("Download the sweep as CSV").wait_for(timeout=30_000)
        _no_exception(page)
    if name == "policy_value":  # the landscape, computed on demand in the browser
        page.get_by_role("button", name="Compute landscape").click()
        page.get_by_text("Loss on the PCA plane of the training path").wait_for(timeout=120_000)
        _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.close()


def test_check_up_lists_the_naive_loss_s_findings(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    page.goto(f"{server}/Sparse_penalty?variant=naive")
    # the page's first run writes its settings into the address and reruns: a click during that rerun can be lost
    # (under load the Quick check-up once never started), so wait for the address first
    expect(page).to_have_url(re.compile(r"steps=300"), timeout=120_000)
    page.get_by_text("Check-up: what will go wrong").click()
    page.get_by_role("button", name="Quick check-up", exact=True).click()  # the full check: test_checkup
    _wait_or_show(page, "nonfinite-at-edge", "check_up", timeout=120_000)
    page.get_by_text("the short run, the one-batch run and the scan were skipped").wait_for(timeout=60_000)
    assert page.get_by_role("button", name="load this change").count() >= 1
    assert page.get_by_role("button", name="show me").count() >= 1
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator('[data-testid="stExpander"]', has_text="Check-up").screenshot(path=str(ARTIFACTS / "check_up.png"))
    page.close()


def test_runs_page_overlays_two_runs_with_smoothing(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 3000})
    page.goto(f"{server}/Runs")
    _wait_or_show(page, "lr_0.1.csv: first NaN/inf at step 240", "runs")
    slider = page.get_by_role("slider")
    slider.focus()
    slider.press("End")  # 0.99
    for _ in range(9):
        slider.press("ArrowLeft")  # 0.90
    page.get_by_text("0.90").first.wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").nth(3).wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
    page.close()


def test_play_drag_a_slider_pause(server, browser):
    """The instrument: Play, drag the penalty slider while it trains, Pause; the change is marked on the charts."""
    page = browser.new_page(viewport={"width": 1400, "height": 3000})
    page.goto(f"{server}/Sparse_penalty")
    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_text(re.compile(r"A: defaults: running, step [1-9]")).wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    thumb = page.get_by_role("slider", name="penalty (log scale)").locator("xpath=../..")  # the visible thumb
    box = thumb.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 35, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.locator("text.annotation-text", has_text=re.compile(r"penalty 10 -> [0-9.]+")).first.wait_for(timeout=60_000)
    moved = page.get_by_role("textbox", name="penalty value").input_value()
    assert float(moved) > 10
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text(re.compile(r"A: defaults: paused, step [0-9,]+")).wait_for(timeout=60_000)
    page.get_by_text("Download A as CSV").wait_for(timeout=60_000)
    _no_exception(page)
    # the address is written on the rerun after the pause: wait for it (once read too early on a loaded CI)
    expect(page).to_have_url(re.compile(rf"at=[0-9]+(:|%3A)penalty(=|%3D){re.escape(moved)}"), timeout=60_000)
    assert re.search(rf"at=[0-9]+:penalty={moved}", urllib.parse.unquote(page.url))  # the address carries it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live_knobs.png"), full_page=True)
    page.close()


def test_curvature_scenario_trains_at_the_edge_and_the_chart_draws_it(server, browser):
    """The edge-of-stability scenario in the browser: the sharpness climbs to 2/lr, lr doubles at step 1001, the
    status says where the run is against its limit, and the Curvature chart draws the lines and the marker."""
    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    page.goto(f"{server}/Curvature")
    page.get_by_role("button", name="Run this scenario").click()
    _wait_or_show(page, "1400 / 1400 steps", "curvature", timeout=180_000)
    page.get_by_text(re.compile(r"curvature: at the edge of stability since step [0-9]+")).first.wait_for(
        timeout=60_000)
    page.locator("text.gtitle", has_text="Curvature").first.wait_for(timeout=60_000)
    page.locator("text.annotation-text", has_text="lr 0.3 -> 0.6").first.wait_for(timeout=60_000)
    page.get_by_text("Download A as CSV").wait_for(timeout=60_000)
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "curvature.png"), full_page=True)
    page.close()


def test_each_lesson_in_the_presenter_view_fits_a_projector_and_walks_to_its_end(server, browser):
    """1280x720, present=1, each lesson: the first step's text and its chart on screen without scrolling; Next to
    the end."""
    from lossviz import lessons

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    for lesson, found in lessons.LESSONS.items():
        steps = found.steps
        page.goto(f"{server}/Lessons?lesson={lesson}&step=1&present=1")
        page.get_by_role("button", name="Run this step").click()
        _wait_or_show(page, f"{steps[0].scenario.steps} / {steps[0].scenario.steps} steps", f"lesson_{lesson}",
                      timeout=180_000)
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(timeout=60_000)
        box = chart.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 720, (lesson, box)  # the whole chart, no scrolling
        assert page.evaluate("window.scrollY") == 0
        _no_exception(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lesson_{lesson}.png"))
        for k in range(2, len(steps) + 1):
            page.get_by_role("button", name="Next", exact=True).click()
            page.get_by_text(f": {k} / {len(steps)}").wait_for(timeout=60_000)
            _no_exception(page)
        assert f"step={len(steps)}" in page.url and "present=1" in page.url
        # the last step: Next is drawn disabled (waited for: the step counter can be drawn before the buttons are)
        expect(page.get_by_role("button", name="Next", exact=True)).to_be_disabled(timeout=60_000)
    page.close()


def _set_and_train(page, values: dict[str, str], steps: int) -> None:
    """Type each knob's value in its box, set the step budget and press Train (which sends them all)."""
    for key, value in values.items():
        _type(page, page.get_by_role("textbox", name=f"{key} value"), value)
    _type(page, page.get_by_label("steps", exact=True), str(steps))
    page.get_by_role("button", name="Train", exact=True).click()


def test_your_loss_page_types_a_formula_and_trains(server, browser):
    """A formula typed in the browser: its LaTeX, its knob, a run, and the NaN named inside the formula."""
    page = browser.new_page(viewport={"width": 1400, "height": 3200})
    page.goto(f"{server}/Your_loss")
    box = page.get_by_role("textbox", name="loss formula")
    box.wait_for(timeout=60_000)
    box.fill("-(w * y * log(p) + (1 - y) * log(1 - p)); w=20")
    box.press("Control+Enter")
    expect(page).to_have_url(re.compile(r"loss=[^&]*w%3D20(&|$)"), timeout=30_000)  # it has run with the formula
    page.get_by_role("textbox", name="w value").wait_for(timeout=30_000)
    _set_and_train(page, {"lr": "0.05"}, 60)
    _wait_or_show(page, "Download A as CSV", "your_loss")
    page.get_by_text("In the formula:").first.wait_for(timeout=60_000)
    assert page.get_by_text("log(p) = -inf").count() >= 1
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "your_loss.png"), full_page=True)
    page.close()


def test_a_file_of_your_own_code_trains_and_says_where_its_nan_was_born(server, browser):
    """The served file's page, reached from its address with a query that tries to name another file: the file's
    knobs, a run that turns NaN, and the line of the file where it was born."""
    page = browser.new_page(viewport={"width": 1400, "height": 3200})
    # A session whose first run goes through Streamlit's automatic pages/ navigation (the first ones a fresh server
    # serves) is told "Page not found" for a code page, which has no file there, before the titled navigation runs
    # the page: Playwright closes that dialog whenever it shows (while it is open the page is inert).
    page.add_locator_handler(page.get_by_text("Page not found"), lambda _: page.keyboard.press("Escape"))
    page.goto(f"{server}/code_focal?code=/etc/other.py&gamma=0.5&lr=0.5")
    _wait_or_show(page, "Your own code", "your_code")
    assert page.get_by_role("link", name="focal.py").count() >= 1  # titled in the navigation
    assert page.get_by_text("other.py").count() == 0 or page.get_by_text("cannot use").count() >= 1
    _set_and_train(page, {"gamma": "0.5", "lr": "0.5"}, 200)
    _wait_or_show(page, "Download A as CSV", "your_code")
    page.get_by_text("Where it was born:").first.wait_for(timeout=60_000)
    assert page.get_by_text("gradient of (1.0 - pt) ** gamma").count() >= 1
    assert page.get_by_text("python -m lossviz train examples/focal.py").count() >= 1
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "your_code.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("name", [k for k in PAGES if k != "home"])
def test_a_page_s_address_opened_directly_keeps_the_titles_and_its_state(server, browser, name):
    """A shared address lands on its page through the titled navigation (never Streamlit's raw file list), and the
    state in its query is loaded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{server}/{PAGES[name]}?lr=0.05&seed=3&steps=120")
    page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_text("Home", exact=True).count() == 1
    # Streamlit's raw list names app.py and the files ("home" is also the name of the Home icon)
    for raw in ("app", "Policy value", "Two branch", "Sparse penalty", "Max MSE", "Your loss"):
        assert nav.get_by_text(raw, exact=True).count() == 0, raw
    page.get_by_text("Loaded the run in the address into the sidebar").wait_for(timeout=30_000)
    # (the message can be drawn before the sidebar's boxes are: wait for their values, then check them)
    expect(page.get_by_role("textbox", name="lr value")).to_have_value("0.05", timeout=30_000)
    expect(page.get_by_label("seed", exact=True)).to_have_value("3", timeout=30_000)
    assert PAGES[name] in page.url and "lr=0.05" in page.url
    _no_exception(page)
    page.close()
