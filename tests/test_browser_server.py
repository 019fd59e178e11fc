"""The dashboard's server in a real headless Chromium, over its life: installed and started by its command, many
sessions at once, a slow client playing for a minute, a closed tab, SIGTERM while runs play, a fresh start.

Apart from ``test_browser.py`` (the pages) so that the two halves of the browser tests run side by side on the
suite's two workers; the fixtures and helpers are that module's.
"""

import os
import re
import signal
import subprocess
import time

from conftest import ROOT, train_csv
from dashboard import server as dashboard_server
from test_browser import (_no_exception, _start_server, _wait_or_show, browser, require_chromium,  # noqa: F401
                          server)  # (browser, server: the fixtures, by their names)


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
