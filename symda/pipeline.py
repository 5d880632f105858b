"""Chains the stages. For now: data preparation and supervised (source-only / oracle) training."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from symda.adapt.supervised import Report, train_segmenter
from symda.config import ExperimentConfig, save_config
from symda.data import build_dataset, check_role, ensure_synthcity
from symda.data.dataset import DatasetError
from symda.io import write_json
from symda.models.build import build_segmenter

log = logging.getLogger(__name__)


def prepare_data(
    cfg: ExperimentConfig, roles: tuple[str, ...], progress: bool = False
) -> dict[str, set[int]]:
    """Generate SynthCity if needed, then check each role's dataset.

    Returns, per role, the indices to skip. A damaged dataset raises DatasetError with the check's
    report unless data.skip_bad_pairs, in which case the bad pairs are skipped and counted in the log.
    """
    ensure_synthcity(cfg.data, cfg.synth, progress=progress)
    skips: dict[str, set[int]] = {}
    if not cfg.data.check:
        return {role: set() for role in roles}
    for role in roles:
        report = check_role(cfg.data, cfg.synth, role, progress=progress)
        if not report.ok and not cfg.data.skip_bad_pairs:
            raise DatasetError(
                report.summary() + "\n(set data.skip_bad_pairs=true to train on the usable pairs)"
            )
        if report.bad:
            log.warning("%s\nskipping %d of %d samples", report.summary(), len(report.bad), report.n_samples)
        skips[role] = report.bad
    return skips


def run_supervised(
    cfg: ExperimentConfig,
    out_dir: Path,
    report: Report,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Source-only training (data.source = gta5 | synthia) or the oracle (data.source = cityscapes).

    Writes config.yaml, checkpoint.pt and metrics.json into out_dir and returns the metrics.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    skips = prepare_data(cfg, ("source", "val"), progress)
    train_set = build_dataset(cfg.data, cfg.synth, "source", skips["source"])
    val_set = build_dataset(cfg.data, cfg.synth, "val", skips["val"])
    torch.manual_seed(cfg.seed)  # the network's initialisation is part of the seed's promise
    model = build_segmenter(cfg.model)
    t0 = time.perf_counter()
    metrics = train_segmenter(
        cfg.train, model, train_set, val_set, out_dir, report, cfg.seed, resume, cfg.eval.protocol, progress
    )
    metrics["train_seconds"] = time.perf_counter() - t0
    write_json(out_dir / "metrics.json", metrics)
    return metrics
