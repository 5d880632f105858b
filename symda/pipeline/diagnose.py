"""`symda diagnose`: pseudo-label diagnostics of a finished run's round-0 networks, as a results file.

Rebuilds (from the artifact store, so nothing retrains) a run's round-0 F_T and F_S, runs both paths
over the target train split and compares their pseudo-label choices with the split's true labels
(SynthCity writes them; training never reads them; symda.pseudo.diagnostics): per-class precision at
equal coverage with M_prob alone and with the soft and hard consistency terms, how often the paths
disagree and who is right when they do. analysis/pseudo_diagnostics.py turns the files of several
runs into a report and a plot without torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from symda.artifacts import ArtifactStore
from symda.config import ConfigError, ExperimentConfig, load_config
from symda.io import write_json
from symda.pseudo.diagnostics import PseudoDiagnostics
from symda.pseudo.generate import iter_pixel_maps

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
    pseudo_cfg = dataclasses.replace(cfg.pseudo, consistency="soft")  # M_consis for every run
    diag = PseudoDiagnostics(conf_weight=cfg.pseudo.conf_weight)
    with torch.no_grad():
        for maps in iter_pixel_maps(pair, target, pseudo_cfg, None, cfg.eval.batch_size, progress,
                                    f"diagnostics {Path(run).name}"):  # fmt: skip
            label = labelled.decode_label(labelled.samples[maps.index].label)
            diag.update(maps.pred, maps.m_prob, maps.m_consis, maps.pred_t, maps.pred_s, label)
    networks = {"F_T_r0": adapted.f_t.key, "F_S_r0": adapted.f_s.key}
    return write_json(out or Path(run) / DIAGNOSTICS_FILE, {"run": str(Path(run).resolve()), "networks": networks,
                                                           **diag.summary()})  # fmt: skip
