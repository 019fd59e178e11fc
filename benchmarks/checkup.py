"""Time of the loss check-up per built-in demo, each in a fresh process (its XLA disk cache as the machine has it):
importing lossviz and TensorFlow, ``check --quick``, then the full check.

    python benchmarks/checkup.py [--cold]

``--cold`` points the XLA persistent cache at an empty folder, so every compile is a first compile. The aim
(issue 18, 2 cores): the full check under 30 s per demo, ``--quick`` under 2 s (after the import).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("policy-value", {}), ("two-branch", {}), ("sparse-penalty", {}), ("max-mse", {}), ("custom", {}),
         ("sparse-penalty", {"variant": "naive"}), ("two-branch", {"alpha": "trainable"})]

CHILD = """
import json, sys, time
start = time.perf_counter()
from lossviz import checkup
imported = time.perf_counter() - start
demo, settings = sys.argv[1], json.loads(sys.argv[2])
t = time.perf_counter(); quick = checkup.check(demo, settings, quick=True); quick_s = time.perf_counter() - t
t = time.perf_counter(); full = checkup.check(demo, settings); full_s = time.perf_counter() - t
print(json.dumps({"import": imported, "quick": quick_s, "full": full_s,
                  "errors": sorted({f.id for f in full if f.severity == "error"})}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="an empty XLA cache: every compile is a first one")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"{'demo':<40} {'import s':>9} {'quick s':>8} {'full s':>7}  errors")
    for demo, settings in CASES:
        with tempfile.TemporaryDirectory() as cache:
            if args.cold:
                env["LOSSVIZ_XLA_CACHE"] = cache
            out = subprocess.run([sys.executable, "-c", CHILD, demo, json.dumps(settings)], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        name = demo + (" " + " ".join(f"{k}={v}" for k, v in settings.items()) if settings else "")
        print(f"{name:<40} {row['import']:>9.1f} {row['quick']:>8.2f} {row['full']:>7.1f}  "
              f"{', '.join(row['errors']) or '-'}", flush=True)


if __name__ == "__main__":
    main()
