"""Result records: one flat JSON record per run (result.json), the unit every table is built from.

Column names are the config's dotted keys (`config.train.lr` style is avoided: the key is exactly
`train.lr`), so YAML, sweeps and result columns say the same thing.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig, config_hash, flatten
from symda.io import write_json

RECORD_VERSION = 1


def git_revision(cwd: Path | None = None) -> str:
    """The checkout's commit (with '-dirty' when it has uncommitted changes), or 'unknown'."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def make_record(cfg: ExperimentConfig, metrics: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """A flat record: identity, every config key (dotted), then the run's metrics (already flat or
    one level deep: per-class IoU dicts become `iou.<class>` / `iou_fused.<class>` columns)."""
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "run_id": run_id or uuid.uuid4().hex[:12],
        "config_hash": config_hash(cfg),
        "git_revision": git_revision(Path(__file__).parent),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    record.update(flatten(cfg))
    for key, value in metrics.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                record[f"{key}.{sub}"] = v
        else:
            record[key] = value
    return record


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    return write_json(Path(out_dir) / "result.json", record)
