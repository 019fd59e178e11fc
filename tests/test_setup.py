"""What a newcomer trips over: the browser tests without Chromium, page titles in the navigation, pages run on
their own from any directory."""

import os
import subprocess
import sys

from conftest import ROOT
from dashboard.common import FAMILIES
from dashboard.navigation import PAGES


def _pytest_browser_without_chromium(ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["LOSSVIZ_CHROMIUM"] = "/nonexistent/chromium"
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                           "tests/test_browser.py::test_home_page"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_browser_tests_skip_without_chromium_outside_ci():
    proc = _pytest_browser_without_chromium(ci=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout and "Chromium is missing at /nonexistent/chromium" in proc.stdout


def test_browser_tests_fail_without_chromium_under_ci():
    proc = _pytest_browser_without_chromium(ci=True)
    assert proc.returncode != 0
    assert "under CI the browser tests must run" in proc.stdout and "1 error" in proc.stdout


def test_navigation_titles():
    titles = [title for _, title, _, _ in PAGES]
    assert titles == ["Home", "Policy / value (AlphaGo Zero)", "Two branches, weighted", "Sparse-penalty BCE",
                      "Maximised MSE", "Curvature (edge of stability)", "Your loss (a formula)", "Lessons",
                      "Runs (CSV files)"]
    assert all((ROOT / path).exists() for path, _, _, _ in PAGES)
    assert {family["page"] for family in FAMILIES.values()} <= {ROOT / path for path, _, _, _ in PAGES}


def test_app_runs_with_its_navigation():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.title[0].value == "lossviz"  # the home page is the default


def test_a_page_runs_on_its_own_from_another_directory(tmp_path):
    """A fresh interpreter in an unrelated directory, nothing of the repository on its path."""
    script = ("from streamlit.testing.v1 import AppTest\n"
              f"at = AppTest.from_file({str(ROOT / 'pages' / '3_Sparse_penalty.py')!r}, default_timeout=120)\n"
              "at.run()\n"
              "print('EXCEPTIONS', len(at.exception), 'TITLE', at.title[0].value)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LOSSVIZ_WARM"] = "0"  # the page only: no background compiles of every structure
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert "EXCEPTIONS 0 TITLE Sparse-penalty binary cross-entropy" in proc.stdout, proc.stderr[-2000:]
