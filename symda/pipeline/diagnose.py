"""`symda diagnose`: pseudo-label diagnostics of a finished run's round-0 networks, as a results file.

Rebuilds (from the artifact store, so nothing retrains) a run's round-0 F_T and F_S, runs both paths
over the target train split and compares their pseudo-label choices with the split's true labels
(SynthCity writes them; training never reads them; symda.pseudo.diagnostics): per-class precision at
equal coverage of F_T alone, the fused M_prob (DPL), M_consis alone, M_conf (soft and hard) and ADPL's
per-class path weights (from a first pass over the split), how often the paths disagree and who is
right when they do. analysis/pseudo_diagnostics.py turns the files of several
runs into a report and a plot without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from symda.artifacts import ArtifactStore
from symda.config import ConfigError, ExperimentConfig, load_config
from symda.data.dataset import SegmentationDataset
from symda.data.labels import NUM_CLASSES
from symda.io import write_json
from symda.pseudo.confidence import class_confidence_sums, class_path_weights
from symda.pseudo.diagnostics import PseudoDiagnostics
from symda.pseudo.generate import PairProbabilityFn, iter_full_size_probabilities

from .segmenters import adapted_networks
from .stages import labelling_inputs, translation_stage

DIAGNOSTICS_FILE = "pseudo_diagnostics.json"  # in the run folder, unless told otherwise


def diagnose_run(run: Path, out: Path | None = None, progress: bool = False) -> Path:
    """Write the diagnostics of the run folder `run` (its config.yaml, its store) to `out` (default
    run/DIAGNOSTICS_FILE); ConfigError for a run without both paths. Returns the file."""
    config = Path(run) / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no config.yaml)")
    cfg: ExperimentConfig = load_config(config, legacy=True)
    if not (cfg.adapt.symmetric and cfg.translate.enabled):
        raise ConfigError(
            f"{run}: needs both paths (adapt.symmetric and translate.enabled, as full.yaml has)"
        )
    store = ArtifactStore(cfg.artifacts_dir)

    def report(record: Any, checkpoint: Path | None = None) -> None:
        """The networks come from the store: nothing to report."""

    roots, keys = translation_stage(cfg, store, report, progress)
    adapted = adapted_networks(cfg, store, roots, keys, report, progress)
    pair, target, labelled, _ = labelling_inputs(cfg, roots, adapted.f_t, adapted.f_s)
    batch, name = cfg.eval.batch_size, Path(run).name
    with torch.no_grad():
        weights = adpl_weights(pair, target, batch, progress, f"class confidence {name}")
        diag = PseudoDiagnostics(
            weights, fusion_weight=cfg.pseudo.fusion_weight, conf_weight=cfg.pseudo.conf_weight
        )
        probabilities = iter_full_size_probabilities(
            pair, target, None, batch, progress, f"diagnostics {name}"
        )
        for index, p_t, p_s in probabilities:
            diag.update(p_t, p_s, labelled.decode_label(labelled.samples[index].label))
    networks = {"F_T_r0": adapted.f_t.key, "F_S_r0": adapted.f_s.key}
    return write_json(out or Path(run) / DIAGNOSTICS_FILE, {"run": str(Path(run).resolve()), "networks": networks,
                                                           **diag.summary()})  # fmt: skip


def adpl_weights(pair: PairProbabilityFn, target: SegmentationDataset, batch_size: int, progress: bool = False,
                 desc: str = "class confidence") -> torch.Tensor:  # fmt: skip
    """ADPL's (C,) per-class weights of F_T: each path's mean confidence per class over `target` (one
    pass of both networks), F_T's share (symda.pseudo.confidence.class_path_weights)."""
    sums = {path: torch.zeros(NUM_CLASSES, dtype=torch.float64) for path in "TS"}
    counts = {path: torch.zeros(NUM_CLASSES, dtype=torch.float64) for path in "TS"}
    for _, p_t, p_s in iter_full_size_probabilities(pair, target, None, batch_size, progress, desc):
        for path, p in (("T", p_t), ("S", p_s)):
            total, pixels = class_confidence_sums(p, NUM_CLASSES)
            sums[path] += total
            counts[path] += pixels
    return class_path_weights(
        sums["T"] / counts["T"], sums["S"] / counts["S"]
    )  # 0/0: NaN, a class never predicted
