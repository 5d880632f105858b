"""Small result folders in the layouts symda writes: `symda train` runs (metrics.json + config.yaml),
`symda run` records (result.json), one of them an older record, an unfinished run, and a Ray Tune
sweep folder with a finished, an errored, an early-stopped and a pending trial (no Ray needed).

The numbers are chosen so that the tables' means, stds and gains are easy to check by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from symda.config import MOVED_KEYS, apply_overrides, load_config, save_config
from symda.results import CLASS_NAMES, make_record, write_record

# Ablation rows as `symda` writes them: (folder, kind, config overrides, miou per seed, fused per seed).
LADDER: list[tuple[str, str, dict[str, Any], list[float], list[float] | None]] = [
    ("source_only", "train", {"translate.enabled": False}, [10.0, 12.0, 14.0], None),
    ("translated_source", "train", {}, [30.0, 31.0], None),
    ("oracle", "train", {"data.source": "cityscapes", "translate.enabled": False}, [44.0, 46.0], None),
    ("adversarial_only", "run", {"translate.enabled": False, "adapt.symmetric": False, "self_train.enabled": False},
     [15.0], None),
    ("translation_adversarial", "run", {"adapt.symmetric": False, "self_train.enabled": False}, [31.0, 33.0], None),
    ("bdl_like", "run", {"adapt.symmetric": False, "pseudo.consistency": "none"}, [33.0, 35.0], None),
    ("full", "run", {}, [34.0, 36.0], [35.0, 39.0]),
]  # fmt: skip
# What the tables must say about LADDER, in ladder order: (setting, mean, std, seeds, gain).
EXPECTED = [
    ("source only", 12.0, 2.0, 3, None),
    ("AdaptSegNet-like", 15.0, None, 1, 3.0),
    ("+ translation", 30.5, 0.5**0.5, 2, 15.5),
    ("CyCADA-like", 32.0, 2**0.5, 2, 1.5),
    ("BDL-like", 34.0, 2**0.5, 2, 2.0),
    ("ours single", 35.0, 2**0.5, 2, 1.0),
    ("ours fusion", 37.0, 8**0.5, 2, 2.0),
    ("oracle", 45.0, 2**0.5, 2, 8.0),
]
OLD_RECORD = "full-s1"  # written as an older version would: no proxies, no scale.* keys, pseudo.rounds ...


def per_class(miou: float, shift: float = 0.0) -> dict[str, float]:
    """19 class IoUs whose mean is `miou`: class i gets miou + (i - 9) * 0.5, then road + shift and
    bicycle - shift (the mean stays `miou`)."""
    values = {c: miou + (i - 9) * 0.5 for i, c in enumerate(CLASS_NAMES)}
    values["road"] += shift
    values["bicycle"] -= shift
    return values


def write_train_run(out: Path, overrides: dict[str, Any], miou: float, seed: int) -> Path:
    """A `symda train` run folder: config.yaml + metrics.json (translated runs name their S')."""
    cfg = load_config(
        overrides={**overrides, "seed": seed, "synth.seed": seed, "name": out.name.split("-s")[0]}
    )
    save_config(cfg, out / "config.yaml")
    translated = cfg.translate.enabled and cfg.data.source != "cityscapes"
    artifacts = {"translator": "t0", "translated_source": f"s{seed}"} if translated else {}
    metrics = {"step": 1200, "val_miou": miou, "val_per_class_iou": per_class(miou), "artifacts": artifacts,
               "seconds": {"train": 100.0}}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out


def write_run_record(
    out: Path, overrides: dict[str, Any], miou: float, fused: float | None, seed: int, old: bool = False
) -> Path:
    """A `symda run` folder with its result.json (old: without the keys newer versions added)."""
    cfg = load_config(
        overrides={**overrides, "seed": seed, "synth.seed": seed, "name": out.name.split("-s")[0]}
    )
    fused = miou if fused is None else fused
    metrics = {"miou": miou, "iou": per_class(miou), "miou_fused": fused, "iou_fused": per_class(fused, 1.0),
               "proxy_agreement": 0.5 + miou / 100, "proxy_entropy": -miou / 100,
               "pseudo_r1.coverage": 0.5, "seconds": {"adapt": 10.0, "evaluate": 1.0}}  # fmt: skip
    record = make_record(cfg, metrics, run_id=out.name)
    if old:  # before proxies, scale.*, self-training steps and paths; self-training keys at their old places
        moved_back = {new: old for old, new in MOVED_KEYS.items()}
        record = {moved_back.get(k, k): v for k, v in record.items()
                  if not k.startswith(("proxy", "scale.", "self_train.steps", "self_train.paths"))
                  and k != "record_version"}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    write_record(out, record)
    return out


def write_ladder(root: Path) -> Path:
    """LADDER as run folders <root>/<row>-s<seed>, plus full-s2 that never finished (config.yaml only)."""
    for row, kind, overrides, mious, fused in LADDER:
        for seed, miou in enumerate(mious):
            out = root / f"{row}-s{seed}"
            if kind == "train":
                out.mkdir(parents=True)
                write_train_run(out, overrides, miou, seed)
            else:
                f = fused[seed] if fused else None
                write_run_record(out, overrides, miou, f, seed, old=out.name == OLD_RECORD)
    save_config(load_config(overrides={"seed": 2, "name": "full"}), root / "full-s2" / "config.yaml")
    return root


# ----------------------------------------------------------------------------------------- a sweep

BASE = {"train.steps": 7, "pseudo.conf_weight": 0.5}
# trial id: (status, params, final miou or None, Tune's last result, folder?)
TRIALS: dict[str, dict[str, Any]] = {
    "aaaa0001": {"status": "TERMINATED", "conf": 0.3, "miou": 20.0},
    "aaaa0002": {"status": "ERROR", "conf": 0.9},
    "aaaa0003": {"status": "TERMINATED", "conf": 0.5, "miou": 25.0},  # the base config's value: its rerun
    "aaaa0004": {"status": "TERMINATED", "conf": 0.1, "stopped_at": (2, 18.0)},  # ASHA stopped it
    "aaaa0005": {"status": "PENDING", "conf": 0.2},  # in the experiment state only
    "aaaa0006": {"status": "TERMINATED", "conf": 0.7, "miou": 22.0},
}
ERROR_LINE = "FloatingPointError: non-finite training loss nan at step 2 (loss_seg)"


def write_sweep(root: Path, name: str = "thr") -> Path:
    """A sweep folder as symda.sweeps leaves it (sweep.json, Tune's experiment state, run_trial_*
    folders, runs/<trial id>/ records, optuna.db), with the TRIALS above."""
    import optuna

    exp = root / name
    exp.mkdir(parents=True)
    base = root / "base.yaml"
    base.write_text(yaml.safe_dump(apply_overrides({}, BASE)))
    settings = {"space": "space.yaml", "base_config": str(base), "overrides": {}, "paths": {}, "num_samples": 6,
                "select_by": "miou", "seed": 0, "max_concurrent": 1, "max_failures": 0}  # fmt: skip
    (exp / "sweep.json").write_text(json.dumps(settings))
    trial_data = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=f"sqlite:///{exp / 'optuna.db'}", direction="maximize"
    )
    dist = {"pseudo.conf_weight": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for i, (tid, t) in enumerate(TRIALS.items(), start=1):
        params = {"pseudo.conf_weight": t["conf"]}
        logdir = f"run_trial_{tid}_{i}_pseudo_conf_weight={t['conf']:.4f}_2026-11-27_03-00-00"
        last: dict[str, Any] = {}
        if "miou" in t:
            record_dir = write_run_record(
                exp / "runs" / tid, {**BASE, **params, "name": tid}, t["miou"], None, 0
            )
            last = {"progress": 4, "miou": t["miou"], "finished": True, "done": True, "trial_id": tid,
                    "result_json": str(record_dir / "result.json")}  # fmt: skip
        elif "stopped_at" in t:
            progress, miou = t["stopped_at"]
            last = {"progress": progress, "miou": miou, "proxy": 0.4, "finished": False, "trial_id": tid}
        if t["status"] != "PENDING":
            trial_dir = exp / logdir
            trial_dir.mkdir()
            (trial_dir / "params.json").write_text(json.dumps(params))
            lines = [{"progress": 1, "miou": 1.0, "trial_id": tid}, last] if last else []
            (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
        if t["status"] == "ERROR":
            (trial_dir / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{ERROR_LINE}\n")
            save_config(
                load_config(overrides={**BASE, **params, "name": tid}), exp / "runs" / tid / "config.yaml"
            )
        meta = {"trial_id": tid, "status": t["status"], "config": params, "relative_logdir": logdir,
                "trainable_name": "run_trial"}  # fmt: skip
        runtime = {"last_result": last, "error_filename": "error.txt" if t["status"] == "ERROR" else None}
        trial_data.append([json.dumps(meta), json.dumps(runtime)])
        state = {"COMPLETE": t["status"] == "TERMINATED", "FAIL": t["status"] == "ERROR"}
        if state["COMPLETE"] or state["FAIL"]:
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=dist, value=last["miou"] if state["COMPLETE"] else None,
                state=optuna.trial.TrialState.COMPLETE if state["COMPLETE"] else optuna.trial.TrialState.FAIL,
            ))  # fmt: skip
    state_file = exp / "experiment_state-2026-11-27_03-00-00.json"
    state_file.write_text(json.dumps({"trial_data": trial_data, "runner_data": {}, "stats": {}}))
    return exp
