"""A classroom on one server: N sessions press Train at once (a 300-step policy-value run each) and poll their
run as the page does; each N in a fresh process (a cold engine pool).

    python benchmarks/classroom.py [--sessions 8 16 32] [--steps 300] [--draw]

Prints, per N: whether every run completed, the time until the last run ended, min, p50 and p95 of the time from
pressing Train to the run's first record, and the process's peak RSS. ``--draw`` also rebuilds each session's
live charts on every poll (what a browser tab showing the page costs the server).

Aim (issue 11, on 2 cores, N = 32): every run completes, p95 time to the first record under 5 s, total under
15 s, peak RSS under 1.2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POLL_SECONDS = 0.5  # as the page's fragment


def one_room(sessions: int, steps: int, draw: bool) -> dict:
    sys.path.insert(0, os.path.dirname(HERE))
    from lossviz import charts, records
    from lossviz.training import TrainingJob

    first_record: list[float] = []
    done: list[bool] = []
    lock = threading.Lock()
    go = threading.Barrier(sessions)

    def session() -> None:
        go.wait()
        pressed = time.perf_counter()
        job = TrainingJob("policy-value", {}, steps)  # the Train button
        seen_first = None
        while True:
            n = len(job.records)
            if n and seen_first is None:
                seen_first = time.perf_counter() - pressed
            if draw and n:
                runs = {"A": records.window(job.records)}
                charts.loss_chart(runs).to_json()
                charts.grad_norm_chart(runs).to_json()
            if not job.running:
                break
            time.sleep(POLL_SECONDS if seen_first is not None else 0.05)
        with lock:
            first_record.append(seen_first if seen_first is not None else float("inf"))
            done.append(job.trainer.step == steps and job.error is None)

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    first_record.sort()
    return {"sessions": sessions, "complete": sum(done), "total": total, "min": first_record[0],
            "p50": statistics.median(first_record),
            "p95": first_record[min(len(first_record) - 1, int(round(0.95 * (len(first_record) - 1))))],
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--draw", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one room in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_room(args.one, args.steps, args.draw)))
        return
    print(f"CPU cores: {os.cpu_count()}, policy-value, {args.steps} steps a run, each N in a fresh process"
          + (", charts redrawn on every poll" if args.draw else ""))
    for n in args.sessions:
        cmd = [sys.executable, __file__, "--one", str(n), "--steps", str(args.steps)] + (["--draw"] if args.draw else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"N={n:3d}: {r['complete']} of {n} runs complete, last ended after {r['total']:5.1f} s, first record "
              f"min {r['min']:4.1f} s p50 {r['p50']:4.1f} s p95 {r['p95']:4.1f} s, peak RSS {r['rss_mib']:6.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
