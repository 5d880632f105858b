"""The runs: the whole method (`run_experiment`), supervised training (`run_supervised`), and the
upstream a sweep builds once before its trials (`build_upstream`).

    data (SynthCity on first use) -> translator -> S', T', V' -> F_T, F_S adapted
        -> rounds of (pseudo labels -> F_T, F_S self-trained) -> evaluation -> result record

Every stage comes from the artifact store when it was built before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from symda.artifacts import Artifact, ArtifactStore
from symda.config import ExperimentConfig, save_config
from symda.data import build_dataset
from symda.distributed import Report, Runtime, run_stage
from symda.io import read_json, write_json
from symda.pseudo.generate import STATS_FILE
from symda.records import PseudoLabelStats, RunResult
from symda.select import VALIDATORS
from symda.terms.cross_entropy import SourceCrossEntropy
from symda.tracking import TensorBoardLog, tensorboard_log

from .memo import Memos
from .outputs import (
    PREDICTIONS_FILE,
    StageTimer,
    prediction_figure,
    pseudo_label_figure,
    run_pictures,
    synthcity_samples,
    translator_samples,
    write_pictures,
)
from .roots import PSEUDO_FOLDERS
from .scoring import evaluate_method, stage_evaluator, stored_evaluation, val_evaluator
from .segmenters import Adapted, Partner, adapted_networks, segmenter_stage
from .selection import network_file, selections
from .stages import (
    prepare_data,
    pseudo_stage,
    ray_train_storage,
    source_training_config,
    tagged,
    translation_check,
    translation_stage,
)

UPSTREAM_STAGES = ("data", "translate", "adapt")
TRAIN_METRICS = "train_metrics.json"  # run_supervised's training result, before metrics.json adds the rest
# Pseudo-label statistics a run reports per round (console, log.jsonl, TensorBoard): coverage and,
# for diagnostics only, the precision of the kept labels (overall and per class).
REPORTED_PSEUDO_STATS = ("coverage", "mean_conf", "mean_consis", "agreement", "diag_pseudo_accuracy",
                         "diag_pseudo_precision_per_class", "coverage_per_class")  # fmt: skip
# Pseudo-label statistics a run's record holds per round (the artifact's pseudo_stats.json has them all).
RECORDED_PSEUDO_STATS = ("coverage", "mean_conf", "mean_consis", "agreement", "diag_pseudo_accuracy",
                         "diag_pred_miou")  # fmt: skip


def start_run(cfg: ExperimentConfig, out_dir: Path) -> ArtifactStore:
    """Create the run folder, write the resolved config there, set threads; return the artifact store."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    return ArtifactStore(cfg.artifacts_dir)


def run_supervised(
    cfg: ExperimentConfig,
    out_dir: Path,
    report: Report,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Source-only training on S (or on S' with translate.enabled), or the oracle (data.source = cityscapes).

    Writes config.yaml, checkpoint.pt and metrics.json into out_dir and returns the metrics, which
    include the artifact keys it used and the seconds each stage took; every report also goes to
    TensorBoard (out_dir/tensorboard, track.tensorboard).
    """
    from symda.adapt.loop import SegmenterJob, train_segmenter
    from symda.adapt.networks import build_segmenter

    out_dir = Path(out_dir)
    store = start_run(cfg, out_dir)
    timer = StageTimer()
    with tensorboard_log(out_dir, cfg.track.tensorboard) as tb:
        report = tb.wrap(report)
        with timer.stage("translate"):
            train_cfg, artifacts = source_training_config(cfg, store, report, progress)
        skips = prepare_data(train_cfg, ("source", "val"), progress)

        def loop(runtime: Runtime, report_: Report) -> None:
            # Built where the loop runs (in this process, or in each Ray Train worker): datasets hold
            # their decoded-image caches, which should not travel to the workers.
            train_set = build_dataset(train_cfg.data, cfg.synth, "source", skips["source"])
            evaluator = None
            if runtime.is_main:  # only rank 0 evaluates
                val_set = build_dataset(train_cfg.data, cfg.synth, "val", skips["val"])
                evaluator = val_evaluator(val_set, cfg.eval.protocol, progress)
            torch.manual_seed(cfg.seed)  # the network's initialisation is part of the seed's promise
            model = build_segmenter(cfg.model)
            # A Ray Train group restarted after a failure (scale.max_failures) continues from the
            # folder's checkpoint; a new run folder has none (the CLI refuses an unfinished one).
            job = SegmenterJob(cfg.train, {"source": train_set}, (SourceCrossEntropy(),), out_dir, cfg.seed,
                               evaluator, resume or cfg.scale.num_workers > 0, num_workers=cfg.data.num_workers,
                               progress=progress)  # fmt: skip
            metrics = train_segmenter(job, model, report_, runtime)
            if runtime.is_main:  # the loop may run in a worker process: its result travels as a file
                write_json(out_dir / TRAIN_METRICS, metrics)

        with timer.stage("train"):
            run_stage(loop, cfg.scale, out_dir, tagged(report, "train"), ray_train_storage(store))
        metrics = read_json(out_dir / TRAIN_METRICS)
    seconds = {k: v for k, v in timer.seconds.items() if k != "translate" or artifacts}
    metrics.update(artifacts=artifacts, seconds=seconds)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def build_upstream(
    cfg: ExperimentConfig, until: str, report: Report, progress: bool = False
) -> dict[str, str]:
    """Build (or find) the stages up to and including `until` (one of UPSTREAM_STAGES); return their keys.

    A sweep calls this once before its trials, so trials that share an upstream never race to build it.
    """
    if until not in UPSTREAM_STAGES:
        raise ValueError(f"until: {until!r} is not one of {list(UPSTREAM_STAGES)}")
    store = ArtifactStore(cfg.artifacts_dir)
    prepare_data(cfg, ("source", "val"), progress)
    if until == "data":
        return {}
    if until == "translate":
        return translation_stage(cfg, store, report, progress)[1]
    return adapted_networks(
        cfg, store, *translation_stage(cfg, store, report, progress), report, progress
    ).artifact_keys()


def run_experiment(
    cfg: ExperimentConfig, out_dir: Path, report: Report, progress: bool = False, memos: Memos | None = None
) -> dict[str, Any]:
    """The whole method: translate -> adapt F_T (and F_S) -> rounds of pseudo labels + self-training
    -> evaluate single and fused. Every stage comes from the store when it was built before.

    Writes config.yaml, pictures.md, predictions.png, result.json (flat record) and, last, metrics.json into
    out_dir. Every segmenter stage evaluates (val mIoU and every validator; F_T beside F_S also the
    fused score and the agreement validators) every train.eval_every / self_train.eval_every steps and
    at its end, reported under its network's tag ("F_T_r<round>"); the record's "selection" says which
    evaluation each validator would have picked. Each round's pseudo labels are a PseudoLabelStats
    report ("pseudo_r<round>"); the last report is the RunResult. Every report, and each stage's
    pictures as it finishes, also go to TensorBoard (out_dir/tensorboard, track.tensorboard).
    `memos`: network outputs kept across the runs of one process (a sweep's trials); default a run's own.
    """
    from symda.results import make_record, write_record

    out_dir = Path(out_dir)
    memos = memos if memos is not None else Memos()
    with tensorboard_log(out_dir, cfg.track.tensorboard) as tb:
        report = tb.wrap(report)
        store, timer = start_run(cfg, out_dir), StageTimer()
        with timer.stage("data"):
            prepare_data(cfg, ("source", "val"), progress)
        with timer.stage("translate"):
            roots, keys = translation_stage(cfg, store, report, progress)
            translation = translation_check(roots)
        draw_upstream(cfg, store, keys, tb)
        with timer.stage("adapt"):
            up = adapted_networks(cfg, store, roots, keys, report, progress, memos)
        f_t, f_s, artifacts = up.f_t, up.f_s, up.artifact_keys()
        start = round_0_scores(cfg, up) if cfg.self_train.enabled else {}
        pseudo_stats: dict[str, Any] = {}
        for r in range(1, cfg.self_train.rounds + 1) if cfg.self_train.enabled else ():
            with timer.stage("pseudo"):
                pseudo = pseudo_stage(cfg, store, roots, f_t, f_s, r, progress, memos)
                pseudo_stats.update(report_pseudo_labels(pseudo, r, report, tb))
            with timer.stage("self_train"):
                f_t, f_s = self_train_round(cfg, store, up, pseudo, f_t, f_s, r, report, progress, memos)
            artifacts.update({f"pseudo_r{r}": pseudo.key, up.path_t.network(r).tag: f_t.key})
            if f_s is not None:
                artifacts[up.path_s.network(r).tag] = f_s.key
        with timer.stage("evaluate"):
            metrics = final_evaluation(cfg, up, f_t, f_s, progress)
            predictions = prediction_figure(cfg, f_t, f_s, roots.val_translated, out_dir / PREDICTIONS_FILE)
            tb.image("result/predictions", predictions)
    metrics.update(pseudo_stats, **start, artifacts=artifacts, seconds=timer.seconds, peak_mb=timer.peak_mb,
                   selection=selections(store, artifacts))  # fmt: skip
    if translation:
        metrics["translation"] = translation  # result.json: translation.change, translation.identity
    write_pictures(out_dir, {**run_pictures(cfg, store, artifacts),
                             "predictions on val (F_T, fused, ground truth)": predictions})  # fmt: skip
    record = make_record(cfg, metrics, run_id=out_dir.name)
    write_record(out_dir, record)
    # Last: metrics.json marks a finished run (symda.run_folder), so a run killed while writing its
    # record is still unfinished and the same command continues it.
    write_json(out_dir / "metrics.json", metrics)
    report(
        RunResult(
            metrics["miou"], metrics["miou_se"], metrics["miou_fused"], {k: metrics[k] for k in VALIDATORS}
        )
    )
    return record


def round_0_scores(cfg: ExperimentConfig, up: Adapted) -> dict[str, Any]:
    """{"round0": miou, miou_se, miou_fused} of the adapted F_T (beside the adapted F_S), the network
    self-training starts from, from its stage's own final evaluation; {} when that was made under
    another evaluation key (the record then lacks it: nothing is evaluated again for it)."""
    val = up.path_s.val_root if up.f_s is not None else None
    scores = stored_evaluation(cfg, up.f_t, up.path_t, up.f_s, val)
    if scores is None:
        return {}
    return {"round0": {k: scores[k] for k in ("miou", "miou_se", "miou_fused")}}


def draw_upstream(
    cfg: ExperimentConfig, store: ArtifactStore, keys: dict[str, str], tb: TensorBoardLog
) -> None:
    """SynthCity's sample pairs and the translator's sample grids into the run's TensorBoard."""
    synth = synthcity_samples(cfg)
    if synth is not None:
        tb.image("data/synthcity_samples", synth)
    for step, grid in translator_samples(store, keys):
        tb.image("translate/samples", grid, step)


def report_pseudo_labels(pseudo: Artifact, round_: int, report: Report, tb: TensorBoardLog) -> dict[str, Any]:
    """Report a round's pseudo-label statistics (and draw its panels); return what the record keeps."""
    stats = read_json(pseudo.path / PSEUDO_FOLDERS["T"] / STATS_FILE)
    report(
        PseudoLabelStats(
            round_, {k: stats[k] for k in REPORTED_PSEUDO_STATS if k in stats}, f"pseudo_r{round_}"
        )
    )
    figure = pseudo_label_figure(pseudo)
    if figure is not None:
        tb.image(f"pseudo_r{round_}/labels", figure, round_)
    return {f"pseudo_r{round_}.{k}": stats[k] for k in RECORDED_PSEUDO_STATS if k in stats}


def self_train_round(cfg: ExperimentConfig, store: ArtifactStore, up: Adapted, pseudo: Artifact, f_t: Artifact,
                     f_s: Artifact | None, round_: int, report: Report, progress: bool,
                     memos: Memos) -> tuple[Artifact, Artifact | None]:  # fmt: skip
    """Round `round_`'s self-training: F_T on (S', T with the pseudo labels) evaluated beside the
    current F_S, then F_S on (S, T') when self_train.paths is "both" (else F_S stays as it is). Each
    path's partner (online labels) is the other path's network at the round's start."""
    evaluator = stage_evaluator(cfg, up.path_t, f_s, up.path_s.val_root, memos)
    partner_t = Partner(up.path_s, f_s) if f_s is not None else None
    f_t_new = segmenter_stage(
        cfg, store, up.path_t, round_, report, pseudo, f_t, progress, evaluator, partner_t
    )
    if f_s is not None and cfg.self_train.paths == "both":
        f_s = segmenter_stage(cfg, store, up.path_s, round_, report, pseudo, f_s, progress,
                              partner=Partner(up.path_t, f_t))  # fmt: skip
    return f_t_new, f_s


def final_evaluation(cfg: ExperimentConfig, up: Adapted, f_t: Artifact, f_s: Artifact | None,
                     progress: bool) -> dict[str, Any]:  # fmt: skip
    """The run's numbers: the final F_T's stage's own evaluation beside the final F_S when it was made
    under the same evaluation key (a rerun from the store costs nothing), else a new one (F_S trained
    after F_T: self_train.paths both)."""
    metrics = stored_evaluation(cfg, f_t, up.path_t, f_s, up.path_s.val_root)
    if metrics is None:
        f_s_checkpoint = network_file(f_s.path) if f_s is not None else None
        metrics = evaluate_method(cfg, network_file(f_t.path), f_s_checkpoint, up.roots.val_translated,
                                  progress=progress, source_root=up.path_t.source_root)  # fmt: skip
    return metrics
