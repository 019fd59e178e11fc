"""A classroom on one server: N sessions press Train at once (a 300-step policy-value run each) and poll their
run as the page does; each room in a fresh process, cold (nothing compiled yet) or warm (the server compiled
the default structure before the first press, as the dashboard does when it starts). Each with XLA's disk cache
warm (the step was compiled on this machine before: a restarted server) and empty (the first start on a machine):
every process of a case sees the same cache state (a folder of this benchmark's own).

    python benchmarks/classroom.py [--sessions 32 64] [--steps 300] [--draw]

Prints, per room: whether every run completed, the time until the last run ended, min, p50 and p95 of the time
from pressing Train to the run's first record, and the process's peak RSS; beside them the machine's floor,
measured in the same sitting in a fresh process: one cold run's first record (the trace and compile) plus N warm
runs trained back to back. ``--draw`` also rebuilds each session's live charts on every poll.

Aims (issues 20 and 31, 2 cores): N = 32 cold: total within 1.1x the floor, every run's first record (the max)
within 1.5 s of a lone run's cold first record, peak RSS 900 MiB or less, every run completes; N = 32 warm: first
record p95 1.5 s or less; N = 64: measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POLL_SECONDS = 0.5  # as the page's fragment


def floor(sessions: int, steps: int) -> dict:
    """One cold run's first record, then ``sessions`` warm runs back to back."""
    sys.path.insert(0, os.path.dirname(HERE))
    from lossviz.jobs import TrainingJob

    start = time.perf_counter()
    job = TrainingJob("policy-value", {}, steps, start=False)
    first = _first_record_clock(job)
    job.resume()
    job.wait()
    cold = first[0] - start
    start = time.perf_counter()
    for seed in range(sessions):
        TrainingJob("policy-value", {}, steps, seed=seed).wait()
    warm = (time.perf_counter() - start) / sessions
    return {"cold": cold, "warm_run": warm, "floor": cold + sessions * warm}


def _first_record_clock(job) -> list[float]:
    """A list that gets the time the job's first record is appended (the run's log, as the page reads it)."""
    log, seen = job.trainer.records, []
    append = log.append

    def timed(*args, **kwargs):
        append(*args, **kwargs)
        if not seen:
            seen.append(time.perf_counter())
    log.append = timed
    return seen


def one_room(sessions: int, steps: int, draw: bool, warm: bool) -> dict:
    sys.path.insert(0, os.path.dirname(HERE))
    from lossviz import charts, records, training
    from lossviz.jobs import TrainingJob

    if warm:
        training.warm(["policy-value"])
    first_record: list[float] = []
    done: list[bool] = []
    lock = threading.Lock()
    go = threading.Barrier(sessions)

    def session(seed: int) -> None:
        go.wait()
        pressed = time.perf_counter()
        job = TrainingJob("policy-value", {}, steps, seed=seed, start=False)  # the Train button, a seed a session
        first = _first_record_clock(job)
        job.resume()
        while True:  # at the page's pace: the first record's time is taken as it is appended, not by polling
            n = len(job.records)
            if draw and n:
                runs = {"A": records.window(job.records)}
                charts.loss_chart(runs).to_json()
                charts.grad_norm_chart(runs).to_json()
            if not job.running:
                break
            time.sleep(POLL_SECONDS)
        with lock:
            first_record.append(first[0] - pressed if first else float("inf"))
            done.append(job.trainer.step == steps and job.error is None)

    threads = [threading.Thread(target=session, args=(seed,)) for seed in range(sessions)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    first_record.sort()
    return {"sessions": sessions, "complete": sum(done), "total": total, "min": first_record[0],
            "max": first_record[-1],
            "p50": statistics.median(first_record),
            "p95": first_record[min(len(first_record) - 1, int(round(0.95 * (len(first_record) - 1))))],
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_end_mib": _rss_now()}


def _rss_now() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--draw", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one room in this process
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)  # measure the floor in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_room(args.one, args.steps, args.draw, args.warm)))
        return
    if args.floor:
        print(json.dumps(floor(args.floor, args.steps)))
        return
    print(f"CPU cores: {os.cpu_count()}, policy-value, {args.steps} steps a run, each room in a fresh process"
          + (", charts redrawn on every poll" if args.draw else ""))

    def fresh(cache: str, *flags) -> dict:
        cmd = [sys.executable, __file__, "--steps", str(args.steps), *flags] + (["--draw"] if args.draw else [])
        env = {**os.environ, "LOSSVIZ_XLA_CACHE": cache}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        return json.loads(out.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as folder:
        shared = os.path.join(folder, "shared")
        fresh(shared, "--floor", "1", "--steps", "40")  # the machine's disk cache, as a restarted server has it
        caches = {"disk cache warm": lambda: shared, "disk cache empty": lambda: tempfile.mkdtemp(dir=folder)}
        for n in args.sessions:
            for words, cache in caches.items():
                f = fresh(cache(), "--floor", str(n))
                print(f"N={n:3d}, {words}: floor: a lone run's cold first record {f['cold']:.1f} s + {n} x "
                      f"{f['warm_run']:.2f} s warm runs = {f['floor']:.1f} s", flush=True)
                for warm in (False, True) if n == 32 and words == "disk cache warm" else (False,):
                    r = fresh(cache(), "--one", str(n), *(["--warm"] if warm else []))
                    print(f"N={n:3d}, {words}, {'warm' if warm else 'cold'} process: {r['complete']} of {n} runs "
                          f"complete, last ended after {r['total']:5.1f} s ({r['total'] / f['floor']:.2f}x the floor), "
                          f"first record min {r['min']:4.1f} s p50 {r['p50']:4.1f} s p95 {r['p95']:4.1f} s max "
                          f"{r['max']:4.1f} s (the last {r['max'] - f['cold']:+.1f} s from a lone run's cold first "
                          f"record), peak RSS {r['rss_mib']:4.0f} MiB (at the end {r['rss_end_mib']:4.0f} MiB)",
                          flush=True)


if __name__ == "__main__":
    main()
