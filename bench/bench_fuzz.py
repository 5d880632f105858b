"""The property-based fuzzing of configs and datasets (tests/test_fuzz_config.py, tests/test_fuzz_data.py)
at the long profile: thousands of generated cases instead of the suite's hundreds, random (not the
suite's fixed cases) unless --derandomize. Prints, per property, the cases tried, passing and failing,
the outcomes seen (refused / harmless per kind of damage), and the verdict.

    python bench/bench_fuzz.py                  # HYPOTHESIS_PROFILE=long: 5000 config, 1500 data cases each
    python bench/bench_fuzz.py --examples 20000  # more
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, help="cases per property (default: the long profile's)")
    args = p.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long", "PYTHONPATH": str(ROOT)}
    if args.examples:
        env["SYMDA_FUZZ_EXAMPLES"] = str(args.examples)
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
         "-k", "not every_kind_of_bad_value", "tests/test_fuzz_config.py", "tests/test_fuzz_data.py"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    tried = failing = 0
    for line in run.stdout.splitlines():
        if line.startswith("tests/") and line.rstrip().endswith(":"):
            print(line.rstrip())
        elif m := re.search(r"(\d+) passing, (\d+) failing", line):
            tried += int(m[1]) + int(m[2])
            failing += int(m[2])
            print(line.rstrip())
        elif re.match(r"\s+\* [\d.]+%, \w+: (refused|harmless)", line):
            print(line.rstrip())
    tracebacks = run.stdout.count("Traceback") + run.stderr.count("Traceback")
    results = [x for x in run.stdout.splitlines() if re.search(r"\d+ (passed|failed)", x)]
    summary = results[-1].strip(" =") if results else run.stderr[-500:]
    print(
        f"\n{tried} generated cases, {failing} failing, {tracebacks} tracebacks, {seconds:.0f} s ({summary})"
    )
    print("verdict:", "every case loaded or was refused with the key or file named" if run.returncode == 0
          else "FAILED: see pytest's output above")  # fmt: skip
    if run.returncode:
        print(run.stdout[-6000:])
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
