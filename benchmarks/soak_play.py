"""Soak: pages play for a long time in a real Chromium against ``streamlit run app.py`` on 127.0.0.1.

Every minute it prints, per page, the status line's step, the redraw interval and the messages waiting in the
send queue (both from the page's caption), the WebSocket frames and bytes the page received in that minute (each
frame is one Streamlit message), and for the server its resident memory and CPU share over the minute.

    python benchmarks/soak_play.py [--minutes 30] [--pages Sparse_penalty,Policy_value] [--throttle 1]

Aims (issue 21): every status line advances every minute; no session is dropped (a dropped session's status
stops); the server's RSS grows by less than 150 MiB after the first minute. ``--throttle 4`` slows the browser
four-fold (Chrome's CPU throttling).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dashboard import server as dashboard_server  # noqa: E402  (no TensorFlow)
from dashboard.server import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


class Watched:
    """One page: its WebSocket traffic and what its status line and caption say."""

    def __init__(self, browser, url: str, path: str, throttle: float):
        self.path, self.frames, self.bytes = path, 0, 0
        self.page = browser.new_context(viewport={"width": 1400, "height": 3000}).new_page()
        self.page.on("websocket", self._socket)
        self.page.goto(f"{url}/{path}")
        self.page.get_by_role("button", name="Play", exact=True).wait_for(timeout=120_000)
        if throttle > 1:
            self.page.context.new_cdp_session(self.page).send("Emulation.setCPUThrottlingRate", {"rate": throttle})
        self.page.get_by_role("button", name="Play", exact=True).click()

    def _socket(self, ws) -> None:
        ws.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        self.frames += 1
        self.bytes += len(payload)

    def read(self) -> dict:
        body = self.page.inner_text("body")
        status = re.search(r"A: [^\n]*?: ([a-z: ]+), step ([0-9,]+)", body)
        pace = re.search(r"redrawn every ([0-9.]+) s(?:, ([0-9]+) messages waiting)?", body)
        frames, size = self.frames, self.bytes
        self.frames = self.bytes = 0
        return {"status": status.group(1) if status else "?",
                "step": int(status.group(2).replace(",", "")) if status else -1,
                "interval": float(pace.group(1)) if pace else float("nan"),
                "waiting": int(pace.group(2) or 0) if pace else 0, "frames": frames, "kib": size / 1024}


def server_usage(proc: psutil.Process) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds) of the server and its children."""
    procs = [proc] + proc.children(recursive=True)
    rss = sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    cpu = sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())
    return rss, cpu


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--pages", default="Sparse_penalty,Policy_value")
    parser.add_argument("--throttle", type=float, default=1.0)
    args = parser.parse_args()
    os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
    with open(os.path.join(ROOT, "test-artifacts", "soak-server.log"), "w") as log:
        proc, url = dashboard_server.start(output=log, wait=120)
    server = psutil.Process(proc.pid)
    print(f"CPU cores: {os.cpu_count()}; {args.minutes:g} min of Play on {args.pages}, browser throttle "
          f"{args.throttle:g}x", flush=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            pages = [Watched(browser, url, path, args.throttle) for path in args.pages.split(",")]
            rss0, cpu0 = server_usage(server)
            start, last = time.time(), {pg.path: -1 for pg in pages}
            first_rss, advanced, minute = None, True, 0
            while time.time() - start < 60 * args.minutes:
                minute += 1
                time.sleep(max(0.0, start + 60 * minute - time.time()))
                rss, cpu = server_usage(server)
                words = []
                for pg in pages:
                    seen = pg.read()
                    moved = seen["step"] > last[pg.path]
                    advanced &= moved and seen["status"] == "running"
                    last[pg.path] = seen["step"]
                    words.append(f"{pg.path}: {seen['status']} step {seen['step']:,}"
                                 + ("" if moved else " (STUCK)")
                                 + f", redraw {seen['interval']:g} s, {seen['waiting']} waiting, "
                                   f"{seen['frames']} msgs / {seen['kib']:.0f} KiB")
                first_rss = rss if first_rss is None else first_rss
                print(f"min {minute:3d}: RSS {rss:5.0f} MiB (+{rss - first_rss:.0f} since min 1), CPU "
                      f"{100 * (cpu - cpu0) / 60:.0f}% | " + " | ".join(words), flush=True)
                cpu0 = cpu
            print(f"every status advanced every minute: {advanced}; RSS growth after the first minute "
                  f"{rss - first_rss:.0f} MiB (aim < 150); start {rss0:.0f} MiB", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
