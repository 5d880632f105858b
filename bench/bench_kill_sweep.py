"""Kill the sweep driver anywhere: a tiny threshold sweep (4 trials, one at a time, ASHA, selected by
mIoU), its driver SIGKILLed at K seeded random moments, each time finished with `--resume`; then every
trial must have finished exactly once and the table (parameters, mIoU, status) must equal an
uninterrupted sweep's (the trials are deterministic: Optuna's seeded random start, one trial at a time).

    python bench/bench_kill_sweep.py                 # K = 8 kills, seed 0 (sweeps killed until done, one after another)
    python bench/bench_kill_sweep.py --kills 20 --keep /tmp/ks

Prints every kill (its moment, what the sweep had finished by then) and the verdict. One local Ray
cluster of this machine (loopback only) serves every driver (--address): a driver's start is then
0.1 s instead of 5-8 s, and a killed driver's trials die with it, as on a user's cluster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "synth": {"root": "data/synthcity", "n_source": 16, "n_target": 12, "n_val": 8, "height": 64, "width": 128},
    "translate": {"generator_steps": 4, "batch_size": 4, "checkpoint_every": 2},
    "train": {"steps": 4, "batch_size": 2, "log_every": 2, "checkpoint_every": 2, "threads": 1},
    "self_train": {"steps": 4, "eval_every": 2, "paths": "T"},
    "scale": {"precision": "fp32"},
}  # fmt: skip
SPACE = {
    "config": "base.yaml", "upstream": "adapt", "num_samples": 4, "n_startup_trials": 4, "max_t": 4,
    "grace_period": 2, "reduction_factor": 2,
    "space": {"pseudo.threshold": {"choice": ["global", "class_quantile"]},
              "pseudo.tau": {"uniform": [0.3, 0.9], "when": {"pseudo.threshold": "global"}},
              "pseudo.quantile": {"uniform": [0.2, 0.8], "when": {"pseudo.threshold": "class_quantile"}},
              "pseudo.conf_weight": {"uniform": [0.0, 1.0]}},
}  # fmt: skip
COMPARED = ("status", "miou", "progress")


def command(work: Path, name: str, address: str, resume: bool) -> list[str]:
    cmd = [sys.executable, str(ROOT / "tune" / "sweep_threshold.py"), "--storage", str(work / "sweeps"),
           "--name", name, "--address", address]  # fmt: skip
    if resume:
        return [*cmd, "--resume"]
    # Each sweep its own store: the killed one rebuilds everything, nothing is borrowed from the other.
    return [*cmd, "--space", str(work / "space.yaml"), "--max-concurrent", "1", "--select-by", "miou", "--seed", "0",
            "--set", f"artifacts_dir={work / ('store-' + name)}"]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}


def finished_trials(exp_dir: Path) -> dict[str, int]:
    """{trial id: how many final results Tune recorded for it} (each must be 1)."""
    out: dict[str, int] = {}
    for f in exp_dir.glob("run_trial_*/result.json"):
        finals = [
            r for r in map(json.loads, filter(str.strip, f.read_text().splitlines())) if r.get("finished")
        ]
        if finals:
            out[finals[0]["trial_id"]] = len(finals)
    return out


def table(exp_dir: Path) -> dict[tuple, dict]:
    """The sweep's trials.csv keyed by the trials' parameters (trial ids differ between sweeps)."""
    import pandas as pd

    df = pd.read_csv(exp_dir / "trials.csv")
    params = sorted(c for c in df.columns if c.startswith("pseudo."))

    def key(v):
        return None if isinstance(v, float) and math.isnan(v) else round(v, 9) if isinstance(v, float) else v

    return {tuple(map(key, row[params])): {c: row[c] for c in COMPARED} for _, row in df.iterrows()}


def compare(exp_dir: Path, reference: dict, reference_counts: list[int]) -> list[str]:
    """How a killed-and-resumed sweep differs from the uninterrupted one: each trial that ran to the
    end has exactly one final result, as there (one ASHA stopped early has none in either); the same
    trials with the same status, mIoU and progress."""
    problems = []
    counts = sorted(finished_trials(exp_dir).values())
    if counts != reference_counts:
        problems.append(f"final results per trial {counts}, uninterrupted {reference_counts}")
    killed = table(exp_dir) if (exp_dir / "trials.csv").is_file() else {}
    if killed.keys() != reference.keys():
        problems.append(
            f"other trials than the uninterrupted sweep's: {sorted(killed)} vs {sorted(reference)}"
        )
    for params, row in reference.items():
        if params in killed and not all(same(row[c], killed[params][c]) for c in COMPARED):
            problems.append(f"trial {params}: {killed[params]} after the kills, {row} uninterrupted")
    return problems


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=8, help="kills in all (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments (default 0)")
    p.add_argument("--keep", type=Path, help="keep the sweeps in this folder (default: a temporary one)")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="kill-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "base.yaml").write_text(yaml.safe_dump(BASE))
    (work / "space.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    sys.path.insert(0, str(ROOT))
    from symda.distributed import start_local_ray

    ctx = start_local_ray(num_cpus=2, resources={"train_driver": 2}, include_dashboard=False,
                          logging_level="WARNING")  # fmt: skip
    address = ctx.address_info["gcs_address"]
    rng = random.Random(args.seed)
    try:
        t0 = time.monotonic()
        subprocess.run(command(work, "straight", address, False), cwd=work, env=env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        seconds = time.monotonic() - t0
        print(f"uninterrupted sweep: {seconds:.1f} s", flush=True)
        reference = table(work / "sweeps" / "straight")
        reference_counts = sorted(finished_trials(work / "sweeps" / "straight").values())
        landed, problems, n = 0, [], 0
        with open(work / "killed.log", "w") as log:
            while landed < args.kills:  # one killed sweep after another, each killed until it finishes
                name, resume = f"killed-{n:02d}", False
                while True:
                    delay = rng.uniform(1.0, seconds)  # uniform over the uninterrupted sweep's length
                    driver = subprocess.Popen(command(work, name, address, resume), cwd=work, env=env(),
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
                    try:
                        driver.wait(timeout=delay)
                        if driver.returncode:
                            problems.append(
                                f"{name}: a driver exited with {driver.returncode} (see killed.log)"
                            )
                        break
                    except subprocess.TimeoutExpired:
                        os.killpg(driver.pid, signal.SIGKILL)
                        driver.wait()
                    # --resume once the sweep has begun (its sweep.json); before that, the same command again
                    landed, resume = landed + 1, (work / "sweeps" / name / "sweep.json").is_file()
                    done = finished_trials(work / "sweeps" / name)
                    print(f"{name}: SIGKILL after {delay:5.1f} s, {len(done)} of 4 trials finished by then",
                          flush=True)  # fmt: skip
                problems += [
                    f"{name}: {x}" for x in compare(work / "sweeps" / name, reference, reference_counts)
                ]
                print(f"{name}: finished with --resume; " + ("the same table" if not problems else problems[-1]),
                      flush=True)  # fmt: skip
                n += 1
    finally:
        import ray

        ray.shutdown()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{landed} kills landed")
    print("verdict:", "every trial finished once at most, as uninterrupted; the table equal to the uninterrupted sweep's"
          if not problems else "FAILED: " + "; ".join(problems))  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
