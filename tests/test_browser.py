"""The dashboard in a real headless Chromium: every page trains and draws, with no exception box.

Starts ``streamlit run app.py`` on a free local port and drives Debian's Chromium with Playwright.
Screenshots go to ``test-artifacts/`` (the ones in ``docs/`` were taken this way).
"""

import os
import re
import signal
import subprocess
import time
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


def test_lossviz_dashboard_serves_the_app_from_an_installed_checkout(browser, tmp_path):
    """A fresh venv in a temporary folder (its dependencies seen through a .pth file: no network), the checkout
    installed into it, then ``lossviz dashboard`` from another folder: the health check and a page answer."""
    import shutil
    import site
    import sys
    import urllib.request

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    packages = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                              capture_output=True, text=True).stdout.strip()
    with open(os.path.join(packages, "deps.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    source = tmp_path / "checkout"  # the files a package is built from, copied: the build writes next to them
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "app.py"):
        shutil.copy(ROOT / name, source / name)
    for name in ("lossviz", "dashboard", "pages"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(source)], check=True, cwd=tmp_path, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "runs").mkdir()
    (elsewhere / "runs" / "a.csv").write_text(train_csv(20))
    port = dashboard_server.free_port()
    proc = subprocess.Popen([str(venv / "bin" / "lossviz"), "dashboard", "--runs", "runs", "--port", str(port)],
                            cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LOSSVIZ_WARM": "0"})  # no compiles: this server shows runs
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                assert time.time() < deadline, "lossviz dashboard did not answer its health check in 90 s"
                time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(f"{url}/Runs")
        _wait_or_show(page, "runs in ", "installed_runs")
        page.get_by_text("a.csv").first.wait_for(timeout=60_000)
        assert "site-packages" in subprocess.run(
            [str(python), "-c", "import dashboard.navigation as n; print(n.ROOT)"], capture_output=True, text=True,
            cwd=elsewhere).stdout  # the installed app, not the checkout
        _no_exception(page)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


@pytest.mark.parametrize("lesson", ["sparse-penalty", "policy-value", "two-branch", "max-mse", "curvature"])
def test_a_lesson_in_the_presenter_view_fits_a_projector_and_walks_to_its_end(server, browser, lesson):
    """1280x720, present=1: the first step's text and its chart on screen without scrolling; Next to the end."""
    from lossviz import lessons

    steps = lessons.LESSONS[lesson].steps
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{server}/Lessons?lesson={lesson}&step=1&present=1")
    page.get_by_role("button", name="Run this step").click()
    _wait_or_show(page, f"{steps[0].scenario.steps} / {steps[0].scenario.steps} steps", f"lesson_{lesson}",
                  timeout=180_000)
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(timeout=60_000)
    box = chart.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 720, box  # the whole chart, no scrolling
    assert page.evaluate("window.scrollY") == 0
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"lesson_{lesson}.png"))
    for k in range(2, len(steps) + 1):
        page.get_by_role("button", name="Next", exact=True).click()
        page.get_by_text(f": {k} / {len(steps)}").wait_for(timeout=60_000)
        _no_exception(page)
    assert f"step={len(steps)}" in page.url and "present=1" in page.url
    assert page.get_by_role("button", name="Next", exact=True).is_disabled()
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


def test_server_stops_cleanly_on_sigterm_while_runs_play(browser):
    """SIGTERM to ``streamlit run app.py`` while two pages play: every job stops after its chunk, the process
    exits 0 and never aborts ("terminate called without an active exception"): within 5 s of the chunks, plus a
    compile of the server's warm-up still in flight (it cannot be cut: a thread cut off inside the compiler is
    what aborts)."""
    proc, url = _start_server()
    pages = []
    try:
        for path in ("Sparse_penalty", "Policy_value"):
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/{path}")
            page.get_by_role("button", name="Play", exact=True).click()
            page.get_by_text(re.compile(r"A: defaults: running, step [1-9]")).wait_for(timeout=60_000)
            pages.append(page)
        proc.send_signal(signal.SIGTERM)
        start = time.time()
        proc.wait(timeout=30)
        output = dashboard_server.said(proc)
    finally:
        if proc.poll() is None:  # a failed wait: never leave a server training behind
            proc.kill()
            proc.wait()
    assert time.time() - start < 20 and proc.returncode == 0, output[-2000:]
    assert "terminate called" not in output and "Traceback" not in output
    for page in pages:
        page.close()


def test_six_sessions_press_train_together_and_each_gets_its_own_run(server, browser):
    """A classroom in miniature: six browser sessions (two per page, each with its own run length) press Train
    at about the same time; every page ends with its own run, finished, its own reproducing command, and no
    exception box. More runs than cores: some wait in the queue first."""
    plan = [("Policy_value", 40), ("Sparse_penalty", 60), ("Two_branch", 80), ("Policy_value", 100),
            ("Sparse_penalty", 120), ("Two_branch", 140)]
    contexts, pages = [], []
    try:
        for path, steps in plan:
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            page = context.new_page()
            page.goto(f"{server}/{path}")
            page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60_000)
            box = page.get_by_label("steps", exact=True)
            box.fill(str(steps))
            box.press("Enter")
            contexts.append(context)
            pages.append(page)
        for page in pages:  # (each click sends its page's steps box with it)
            page.get_by_role("button", name="Train", exact=True).click()
        for (path, steps), page in zip(plan, pages):
            page.get_by_text(f"{steps} / {steps} steps").first.wait_for(timeout=240_000)
            page.get_by_text("Download A as CSV").wait_for(timeout=60_000)
            assert page.get_by_text(f"--steps {steps} --seed 0").count() >= 1, path
            _no_exception(page)
    finally:
        for context in contexts:
            context.close()


def _play_status(page) -> tuple[str, int] | None:
    found = re.search(r"A: defaults: ([a-z: ]+), step ([0-9,]+)", page.inner_text("body"))
    return (found.group(1), int(found.group(2).replace(",", ""))) if found else None


def test_a_slow_browser_plays_a_minute_and_keeps_its_session(server, browser):
    """A client slowed six-fold (Chrome's CPU throttling through the DevTools protocol) plays for a minute: the
    status keeps advancing, the redraws slow down instead of queueing, and the session still answers at the end
    (a session dropped by a full send queue would not)."""
    page = browser.new_page(viewport={"width": 1400, "height": 3000})
    page.goto(f"{server}/Sparse_penalty")
    page.get_by_role("button", name="Play", exact=True).wait_for(timeout=60_000)
    throttle = page.context.new_cdp_session(page)
    throttle.send("Emulation.setCPUThrottlingRate", {"rate": 6})
    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_text(re.compile(r"A: defaults: running, step [1-9]")).wait_for(timeout=60_000)
    steps, intervals = [], []
    start = time.time()
    while time.time() - start < 60:
        page.wait_for_timeout(6_000)
        status = _play_status(page)
        assert status is not None and status[0] == "running", page.inner_text("body")[-1500:]
        steps.append(status[1])
        intervals += [float(x) for x in re.findall(r"redrawn every ([0-9.]+) s", page.inner_text("body"))]
    assert all(b > a for a, b in zip(steps, steps[1:])), steps  # every sample of the status is further on
    assert max(intervals) > 0.5, intervals  # the slow client is redrawn less often
    throttle.send("Emulation.setCPUThrottlingRate", {"rate": 1})  # Playwright's click waits on the page itself
    page.get_by_role("button", name="Pause", exact=True).click()  # the session still answers
    page.get_by_text(re.compile(r"A: defaults: paused, step [0-9,]+")).wait_for(timeout=60_000)
    _no_exception(page)
    page.close()


def _cpu_percent(process, seconds: float = 3.0) -> float:
    """The CPU share of a process and its children over ``seconds`` (100 = one core)."""
    import psutil

    def total():
        procs = [process] + process.children(recursive=True)
        return sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())

    before = total()
    time.sleep(seconds)
    return 100.0 * (total() - before) / seconds


def test_closing_a_playing_tab_brings_the_server_back_to_idle(browser):
    """Play, close the tab: the server goes back to idle (under 10% of a core). Both ways are on, shortened (the
    defaults are 60 s unwatched and a 15 s grace): the Play run pauses itself once no page draws it, and the
    session's runs stop once Streamlit has no connection to it (each alone is tested in test_watch.py)."""
    how, env = "closed tab", {"LOSSVIZ_UNWATCHED_SECONDS": "6", "LOSSVIZ_SESSION_GRACE_SECONDS": "3",
                              "LOSSVIZ_WARM": "0"}  # (no warm-up compiles: the page's run is the only work)
    import psutil

    require_chromium()
    proc, url = _start_server(env)
    try:
        server = psutil.Process(proc.pid)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        page = context.new_page()
        page.goto(f"{url}/Sparse_penalty")
        page.get_by_role("button", name="Play", exact=True).click()
        page.get_by_text(re.compile(r"A: defaults: running, step [1-9]")).wait_for(timeout=60_000)
        first = _play_status(page)[1]
        deadline = time.time() + 60
        while _play_status(page)[1] <= first:  # the run trains: its status moves on (whatever the cores' load)
            assert time.time() < deadline, "the run should be training"
            page.wait_for_timeout(200)
        context.close()
        closed = time.time()
        while _cpu_percent(server) >= 10:
            assert time.time() - closed < 60, f"still busy a minute after the tab closed ({how})"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


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


def test_a_fresh_server_draws_the_titled_navigation_first(browser):
    """The first visit to a fresh server: the titled navigation replaces Streamlit's raw file list before the page
    draws anything (it came 3.5 s later when app.py imported TensorFlow first), and the raw list never comes back.

    A fresh server's first script run goes through Streamlit's own ``pages/`` navigation (``_mpa_v1`` in
    ``script_runner.py``), which sends the raw list and then runs app.py; app.py's navigation follows it in the
    same run, before the page imports TensorFlow. Messages reach the browser in order, so whatever the machine's
    load, the page's heading never shows beside the raw list."""
    require_chromium()
    proc, url = _start_server()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url, wait_until="commit")
        seen = []  # (what the sidebar's navigation says, whether the page's heading is drawn)
        deadline = time.time() + 60
        while time.time() < deadline:
            nav = page.locator('[data-testid="stSidebarNav"]')
            if nav.count():
                seen.append((nav.inner_text(), page.locator('[data-testid="stMain"] h1').count() > 0))
                if "Home" in seen[-1][0] and seen[-1][1]:
                    break
            page.wait_for_timeout(50)
        raw = [i for i, (text, _) in enumerate(seen) if "\napp\n" in f"\n{text}\n" or "Policy value" in text]
        titled = [i for i in range(len(seen)) if i not in raw]
        assert titled and all(i < titled[0] for i in raw), [text for text, _ in seen[:3]]  # never back
        assert not any(drawn for i, (_, drawn) in enumerate(seen) if i in raw), seen[:3]  # titled before the page
        page.get_by_text("Open Sparse-penalty binary cross-entropy").wait_for(timeout=60_000)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
