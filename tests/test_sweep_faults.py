"""Sweeps under faults, on the CPU: a node lost while its trial runs (two-node Ray cluster on this
machine), and two sweeps at once on one artifact store. Each driver is a subprocess (a process joins
one Ray cluster only), on tiny data."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from symda.artifacts import MARKER
from symda.config import apply_overrides
from symda.sweeps.space import REPO_ROOT
from tests.conftest import write_cityscapes, write_gta5
from tests.test_sweep import TINY as SWEEP_TINY

# The sweep tests' tiny experiment, with 16 self-training steps: long enough to lose a node mid-trial.
TINY = {**SWEEP_TINY, "train.eval_every": 4, "train.checkpoint_every": 4, "self_train.steps": 16}
# RAY_DEDUP_LOGS=0: Ray would fold the same log line from two workers into one ("repeated 2x").
ENV = {
    **os.environ,
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "PYTHONPATH": str(REPO_ROOT),
}


def tiny_sweep(root: Path, num_samples: int) -> Path:
    """Base config (16 self-training steps, so a trial runs long enough to lose its node) + a space of
    random trials over the global threshold, no early stopping (grace period = max_t)."""
    paths = {"data.source_root": str(write_gta5(root / "gta5", 12)),
             "data.target_root": str(write_cityscapes(root / "cityscapes", 8, 4)),
             "artifacts_dir": str(root / "store")}  # fmt: skip
    base = root / "base.yaml"
    base.write_text(yaml.safe_dump(apply_overrides({}, {**TINY, **paths})))
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump({
        "config": str(base), "upstream": "adapt", "num_samples": num_samples, "n_startup_trials": num_samples,
        "max_t": 16, "grace_period": 16, "space": {"pseudo.tau": {"uniform": [0.3, 0.9]}},
    }, sort_keys=False))  # fmt: skip
    return space


def sweep_cmd(space: Path, storage: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "tune/sweep_threshold.py", "--space", str(space), "--storage", str(storage),
            "--name", name, *extra]  # fmt: skip


def trials(exp_dir: Path) -> list[dict[str, str]]:
    with open(exp_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def assert_store_complete(store: Path) -> None:
    """Every registered artifact is whole: each visible folder has its artifact.json."""
    for stage in store.iterdir():
        if stage.is_dir() and not stage.name.startswith("."):
            for art in stage.iterdir():
                if not art.name.startswith("."):
                    assert (art / MARKER).is_file(), f"half-written artifact registered: {art}"


def test_a_node_lost_mid_sweep_is_survived(tmp_path):
    from ray.cluster_utils import Cluster

    space = tiny_sweep(tmp_path, num_samples=3)
    os.environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    # A lost node is noticed after 2 missed health checks 0.5 s apart (the default waits far longer).
    fast_health = {
        "health_check_initial_delay_ms": 0,
        "health_check_period_ms": 500,
        "health_check_failure_threshold": 2,
    }
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "resources": {"train_driver": 2}, "include_dashboard": False,
                                      "_system_config": fast_health})  # fmt: skip
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    storage, name = tmp_path / "sweeps", "node_loss"
    exp_dir = storage / name
    driver = subprocess.Popen(
        sweep_cmd(space, storage, name, "--max-failures", "2", "--max-concurrent", "2", "--address", cluster.address),
        cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Two trials running means one of them is on the worker node (one CPU each): remove that node.
        deadline = time.monotonic() + 300
        while len(list(exp_dir.glob("runs/*/config.yaml"))) < 2:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "two trials did not start within 300 s"
            time.sleep(0.2)
        cluster.remove_node(worker, allow_graceful=False)
        out, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
        cluster.shutdown()
    assert driver.returncode == 0, out[-3000:]
    rows = trials(exp_dir)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"TERMINATED"}, rows
    assert all(r["finished"] == "True" for r in rows)  # every trial's final result is in the table
    from ray.tune import ExperimentAnalysis

    failures = [t.num_failures for t in ExperimentAnalysis(str(exp_dir)).trials]
    assert sum(failures) >= 1, f"no trial was lost with the node: {failures}"  # retried, then finished
    assert_store_complete(tmp_path / "store")


def test_two_sweeps_at_once_on_one_store(ray_session, tmp_path):
    space = tiny_sweep(tmp_path, num_samples=1)
    storage = tmp_path / "sweeps"
    address = ray_session.address_info["gcs_address"]
    drivers = [
        subprocess.Popen(sweep_cmd(space, storage, name, "--max-concurrent", "1", "--address", address),
                         cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in ("first", "second")
    ]  # fmt: skip
    outs = [d.communicate(timeout=500)[0] for d in drivers]
    for d, out in zip(drivers, outs, strict=True):
        assert d.returncode == 0, out[-3000:]
    for name in ("first", "second"):
        rows = trials(storage / name)
        assert len(rows) == 1 and all(r["finished"] == "True" for r in rows), rows
    # Same seed, same space: both sweeps ask for the same trials; every artifact was built once.
    store = tmp_path / "store"
    for stage in ("translator", "translated_source", "segmenter_T", "segmenter_S", "pseudo"):
        built = [a for a in (store / stage).iterdir() if not a.name.startswith(".")]
        assert built, stage
    log = "\n".join(outs)
    for stage in ("translator", "segmenter_T"):
        keys = {line.split(f"building {stage} artifact ")[1].split()[0]
                for line in log.splitlines() if f"building {stage} artifact " in line}  # fmt: skip
        builds = sum(f"building {stage} artifact {k}" in line for k in keys for line in log.splitlines())
        assert builds == len(keys), f"{stage}: some artifact was built twice"
    assert_store_complete(store)
