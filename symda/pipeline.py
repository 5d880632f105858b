"""Chains the stages through the artifact store; a finished stage is never recomputed.

    data (SynthCity on first use) -> translator -> translated datasets (S', T', V') -> segmentation

Each stage function takes the experiment config, the store and a report callback, and returns the
artifact it found or built. What an artifact's key covers is spelled out in the `*_key_config`
functions, so it is plain which config change rebuilds what.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from symda.adapt.supervised import Report, train_segmenter
from symda.artifacts import Artifact, ArtifactStore
from symda.config import ExperimentConfig, save_config, to_dict
from symda.data import build_dataset, check_role, ensure_synthcity, resolve_roots
from symda.data.dataset import DatasetError
from symda.io import write_json
from symda.models.build import build_segmenter

log = logging.getLogger(__name__)

# Translation directions: which dataset is translated into which style (0 = source, 1 = target).
TRANSLATIONS: dict[str, tuple[str, str | None, int]] = {
    "source": ("source", None, 1),  # S' = G(S, target): source content, target style, source labels
    "target": ("target", "train", 0),  # T' = G(T, source)
    "val": ("target", "val", 0),  # V' = G(V, source), for fused inference
}


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


# ------------------------------------------------------------------------------------- artifact keys


def data_key_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """What identifies the input datasets: resolved roots, and SynthCity's recipe when it is used."""
    source, target = resolve_roots(cfg.data, cfg.synth)
    out: dict[str, Any] = {
        "source": cfg.data.source,
        "source_root": str(source.resolve()),
        "target_root": str(target.resolve()),
        "source_list": cfg.data.source_list,
        "target_list": cfg.data.target_list,
    }
    if not cfg.data.source_root or not cfg.data.target_root:
        out["synth"] = {k: v for k, v in to_dict(cfg.synth).items() if k not in ("root", "auto_generate")}
    return out


def translator_key_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The translator depends on its own section (not its logging cadence), the data and the seed."""
    cadence = ("enabled", "log_every", "sample_every", "checkpoint_every", "apply_batch_size")
    section = {k: v for k, v in to_dict(cfg.translate).items() if k not in cadence}
    return {"translate": section, "data": data_key_config(cfg), "normalize": cfg.data.normalize,
            "flip": cfg.data.flip, "skip_bad_pairs": cfg.data.skip_bad_pairs, "seed": cfg.seed}  # fmt: skip


# ------------------------------------------------------------------------------------------- stages


def tagged(report: Report, stage: str) -> Report:
    """`report` with {"stage": stage} added to every record, so one log can hold several stages."""

    def tagged_report(metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        report({"stage": stage, **metrics}, checkpoint=checkpoint)

    return tagged_report


def translator_stage(
    cfg: ExperimentConfig, store: ArtifactStore, report: Report, progress: bool = False
) -> Artifact:
    """Stage 1a: the StarGAN translator (translator.pt and samples/ in the artifact)."""
    from symda.translate import train_translator

    def build(work: Path) -> None:
        skips = prepare_data(cfg, ("source",), progress)
        t = cfg.translate
        view = dataclasses.replace(
            cfg.data, source_size=t.load_size, target_size=t.load_size, crop_size=t.image_size
        )
        source = build_dataset(view, cfg.synth, "source", skips["source"], with_labels=False)
        target = build_dataset(view, cfg.synth, "target")
        train_translator(t, source, target, work, tagged(report, "translate"), seed=cfg.seed, resume=True, progress=progress,
                         num_workers=cfg.data.num_workers)  # fmt: skip

    ensure_synthcity(cfg.data, cfg.synth, progress=progress)
    return store.get_or_build("translator", translator_key_config(cfg), None, build)


def translated_stage(
    cfg: ExperimentConfig, store: ArtifactStore, translator: Artifact, which: str, progress: bool = False
) -> Artifact:
    """Stage 1b: one dataset translated into the other style, in its own layout under artifact/data.

    which = "source" (S'), "target" (T', the target train split) or "val" (V').
    """
    from symda.translate import translate_root

    role, split, to_domain = TRANSLATIONS[which]
    source_root, target_root = resolve_roots(cfg.data, cfg.synth)
    kind, root = (cfg.data.source, source_root) if role == "source" else ("cityscapes", target_root)
    list_file = (
        cfg.data.source_list if role == "source" else (cfg.data.target_list if which == "target" else "")
    )

    def build(work: Path) -> None:
        translate_root(translator.path / "translator.pt", kind, root, split, to_domain, work / "data", cfg.translate,
                       list_file=list_file or None, batch_size=cfg.translate.apply_batch_size, progress=progress)  # fmt: skip

    config = {"which": which, "data": data_key_config(cfg)}
    return store.get_or_build(f"translated_{which}", config, {"translator": translator.key}, build)


def source_training_config(
    cfg: ExperimentConfig, store: ArtifactStore, report: Report, progress: bool = False
) -> tuple[ExperimentConfig, dict[str, str]]:
    """The config a supervised run trains with: S' in place of S when translation is on.

    Returns (config with data.source_root pointing at S' or unchanged, {stage: artifact key} used).
    The oracle (data.source = cityscapes) already trains on the target style: never translated.
    """
    if not cfg.translate.enabled or cfg.data.source == "cityscapes":
        return cfg, {}
    translator = translator_stage(cfg, store, report, progress)
    translated = translated_stage(cfg, store, translator, "source", progress)
    data = dataclasses.replace(cfg.data, source_root=str(translated.path / "data"))
    return dataclasses.replace(cfg, data=data), {
        "translator": translator.key,
        "translated_source": translated.key,
    }


def run_supervised(
    cfg: ExperimentConfig,
    out_dir: Path,
    report: Report,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Source-only training on S (or on S' with translate.enabled), or the oracle (data.source = cityscapes).

    Writes config.yaml, checkpoint.pt and metrics.json into out_dir and returns the metrics, which
    include the artifact keys it used and the seconds each stage took.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    store = ArtifactStore(cfg.artifacts_dir)
    t0 = time.perf_counter()
    train_cfg, artifacts = source_training_config(cfg, store, report, progress)
    seconds = {"translate": time.perf_counter() - t0} if artifacts else {}
    skips = prepare_data(train_cfg, ("source", "val"), progress)
    train_set = build_dataset(train_cfg.data, cfg.synth, "source", skips["source"])
    val_set = build_dataset(train_cfg.data, cfg.synth, "val", skips["val"])
    torch.manual_seed(cfg.seed)  # the network's initialisation is part of the seed's promise
    model = build_segmenter(cfg.model)
    t0 = time.perf_counter()
    metrics = train_segmenter(
        cfg.train, model, train_set, val_set, out_dir, tagged(report, "train"), cfg.seed, resume,
        cfg.eval.protocol, progress,
    )  # fmt: skip
    seconds["train"] = time.perf_counter() - t0
    metrics.update(artifacts=artifacts, seconds=seconds)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
