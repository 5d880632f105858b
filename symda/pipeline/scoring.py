"""Scoring networks: the evaluation every segmenter stage runs, and the run's final one.

One pass over the val split gives F_T's mIoU and every validator of symda.select (none reads a target
label); with a fixed partner F_S on V' also the fused prediction and the agreement validators. An
evaluation's numbers depend on the network and on what `evaluation_key` names, so the run's final
evaluation can be its last stage's own (`stored_evaluation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from symda.adapt.loop import Evaluator
from symda.artifacts import Artifact, artifact_key
from symda.config import ExperimentConfig
from symda.data import build_dataset
from symda.data.dataset import DatasetError, SegmentationDataset
from symda.records import Evaluation
from symda.select import VALIDATORS

from .memo import Memos, probability_memo
from .roots import NetworkPath, with_roots
from .selection import read_evaluations, selected_step

EVALUATION_VERSION = 1  # bump when a change to the evaluation code changes its numbers


def val_evaluator(val_set: SegmentationDataset, protocol: int, progress: bool = False) -> Evaluator:
    """evaluator(model, step): val mIoU (its bootstrap std) and per-class IoU on the labelled `val_set`."""
    from symda.evaluate import evaluate, segmenter_probabilities

    def evaluator(model: torch.nn.Module, step: int) -> Evaluation:
        scores = evaluate(segmenter_probabilities(model), val_set, protocol, progress=progress)
        return Evaluation(step, scores.miou, scores.miou_se, scores.per_class)

    return evaluator


def pair_probabilities(f_t: torch.nn.Module, f_s: torch.nn.Module | None, translated,
                       memo: dict[tuple[str, tuple[int, ...]], torch.Tensor] | None = None,
                       fixed: tuple[str, ...] = ("T", "S")):  # fmt: skip
    """ProbabilityFn pair for pseudo labels and evaluation: (softmax F_T(t), softmax F_S(t') or None).

    `translated` is the dataset of the translated images in the same order as the one being labelled.
    `memo` (a dict the caller keeps) holds, per batch of indices, the probabilities of the networks
    named in `fixed`, which do not change between calls, so each runs once per batch: F_S while F_T
    self-trains (fixed=("S",)), both while they label (the second pass of per-class thresholds
    reuses the first's).
    """
    from symda.evaluate import model_device

    def probabilities(
        name: str, net: torch.nn.Module, images: Callable[[], torch.Tensor], key
    ) -> torch.Tensor:
        kept = memo is not None and name in fixed
        if kept and (name, key) in memo:
            return memo[(name, key)]
        p = torch.softmax(net(images().to(model_device(net)))["main"].float(), dim=1)
        if kept:
            memo[(name, key)] = p
        return p

    def fn(images: torch.Tensor, indices: list[int]):
        key = tuple(indices)
        p_t = probabilities("T", f_t, lambda: images, key)
        if f_s is None:
            return p_t, None
        p_s = probabilities("S", f_s, lambda: torch.stack([translated[i]["image"] for i in indices]), key)
        return p_t, p_s.to(p_t.device)

    return fn


def source_holdout(cfg: ExperimentConfig, source_root: Path) -> SegmentationDataset | None:
    """The held-out labelled source images in `source_root`'s style (S or S'), or None without a holdout."""
    if not cfg.data.source_holdout:
        return None
    return build_dataset(with_roots(cfg, source_root=source_root).data, cfg.synth, "source_holdout")


def reference_network(cfg: ExperimentConfig) -> tuple[Path, Any] | None:
    """(checkpoint file, its ModelConfig) of select.reference, or None when it is empty: a segmenter
    checkpoint (cfg.model's architecture), or a finished `symda run` folder (its last round's F_T,
    found in the run's own store through its result.json, and the run's own model config)."""
    import json

    from symda.artifacts import ArtifactStore
    from symda.config import ConfigError, load_config
    from symda.records import NetworkId

    from .selection import network_file

    if not cfg.select.reference:
        return None
    path = Path(cfg.select.reference)
    if path.is_file():
        return path, cfg.model
    if not (path / "result.json").is_file():
        raise ConfigError(f"select.reference: {path}: neither a segmenter checkpoint nor a finished `symda run` "
                          "folder (no result.json there)")  # fmt: skip
    record = json.loads((path / "result.json").read_text())
    tags = [k.removeprefix("artifacts.") for k in record if k.startswith("artifacts.")]
    networks = [n for n in map(NetworkId.parse, tags) if n is not None and n.path == "T"]
    if not networks:
        raise ConfigError(f"select.reference: {path}/result.json names no F_T network")
    last = max(networks, key=lambda n: n.round)
    key = record[f"artifacts.{last.tag}"]
    # A relative store was relative to where that run ran: here, or a folder above the run folder
    # (runs/<name> sits in the project folder that holds artifacts/), not a Tune trial's own folder.
    stored = Path(record["artifacts_dir"])
    places = (
        [stored]
        if stored.is_absolute()
        else [Path.cwd() / stored, *(d / stored for d in path.resolve().parents)]
    )
    files = [network_file(ArtifactStore(str(place)).network_path(last, key)) for place in places]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise ConfigError(f"select.reference: {path}: its {last.tag} ({key}) is in none of {[str(p) for p in places[:3]]}"
                          f"{' ...' if len(places) > 3 else ''} (a store removed or moved?)")  # fmt: skip
    return found, load_config(path / "config.yaml", legacy=True).model


def reference_probabilities(cfg: ExperimentConfig, device: torch.device) -> Callable | None:
    """The reference network's ProbabilityFn (select.reference), its probabilities of each batch kept
    (it never changes), or None without a reference."""
    from symda.adapt.networks import load_segmenter

    found = reference_network(cfg)
    if found is None:
        return None
    net = load_segmenter(found[1], found[0]).to(device)
    kept: dict[tuple[int, ...], torch.Tensor] = {}

    def fn(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
        key = tuple(indices)
        if key not in kept:
            kept[key] = torch.softmax(net(images.to(device))["main"].float(), dim=1)
        return kept[key]

    return fn


def score_network(cfg: ExperimentConfig, f_t: torch.nn.Module, val: SegmentationDataset,
                  f_s: torch.nn.Module | None = None, val_t: SegmentationDataset | None = None,
                  holdout: SegmentationDataset | None = None, memo: dict | None = None,
                  save_predictions: Path | None = None, save_color: bool = False, progress: bool = False,
                  reference: Callable | None = None):  # fmt: skip
    """symda.evaluate.PairScores of F_T on `val` (with F_S on `val_t` = V': the fusion and the
    agreement validators), every validator included: F_T on flipped and rescaled val images and on
    MixVal's mixes, and on the held-out source images `holdout` its mIoU (source_miou) and DEV's
    importance-weighted risk (dev, from F_T's embeddings of those and of the val images); with
    `reference` (reference_probabilities) F_T's agreement with it (agreement_ref)."""
    from symda.evaluate import dev_score, evaluate, evaluate_pair, segmenter_probabilities

    probabilities = segmenter_probabilities(f_t)
    source_miou = dev = math.nan
    if holdout is not None:
        source_miou = evaluate(probabilities, holdout, cfg.eval.protocol, cfg.eval.batch_size).miou
        dev = dev_score(f_t, holdout, val, cfg.eval.batch_size)
    pair = pair_probabilities(f_t, f_s, val_t, memo, fixed=("S",))
    return evaluate_pair(pair, val, cfg.eval.fusion_weight, cfg.eval.protocol, cfg.eval.batch_size,
                         save_predictions, save_color, progress, augment=probabilities, source_miou=source_miou,
                         dev=dev, reference=reference)  # fmt: skip


def stage_evaluator(
    cfg: ExperimentConfig,
    net: NetworkPath,
    partner: Artifact | Callable[[], Artifact] | None = None,
    partner_val: Path | None = None,
    memos: Memos | None = None,
) -> Evaluator:
    """evaluator(model, step) for the network of path `net` at each of its evaluations.

    One pass over the path's val split (V for F_T, V' for F_S) gives its mIoU and every validator
    (none reads a target label); with a fixed `partner` network (F_S beside F_T, on `partner_val` =
    V') also the fused scores and the agreement validators. source_miou scores the network on the
    path's held-out source images (S' for F_T, S for F_S; data.source_holdout). Datasets and the
    partner load at the first evaluation; the partner's probabilities are kept in `memos` (it does
    not change), so a network that comes from the store costs nothing. `partner` may be a function
    that returns the partner's artifact (one still being built beside this stage: the first
    evaluation waits for it).
    """
    loaded: dict[str, Any] = {}

    def evaluator(model: torch.nn.Module, step: int) -> Evaluation:
        from symda.adapt.networks import load_segmenter

        from .selection import network_file

        if not loaded:
            fixed = partner() if callable(partner) else partner
            loaded["key"] = evaluation_key(cfg, net, fixed, partner_val)
            loaded["val"] = build_dataset(with_roots(cfg, target_root=net.val_root).data, cfg.synth, "val")
            loaded["holdout"] = source_holdout(cfg, net.source_root)
            loaded["reference"] = reference_probabilities(cfg, next(model.parameters()).device)
            loaded["f_s"] = loaded["val_t"] = loaded["memo"] = None
            if fixed is not None:
                loaded["val_t"] = build_dataset(with_roots(cfg, target_root=partner_val).data, cfg.synth,
                                                "val", with_labels=False)  # fmt: skip
                loaded["f_s"] = load_segmenter(cfg.model, network_file(fixed.path))
                loaded["memo"] = probability_memo(
                    loaded["val"], cfg, 1, memos, ("partner", fixed.key, str(partner_val))
                )
        scores = score_network(cfg, model, loaded["val"], loaded["f_s"], loaded["val_t"], loaded["holdout"],
                               loaded["memo"], reference=loaded["reference"])  # fmt: skip
        fused = None
        if scores.fused is not None:
            fused = (scores.fused.miou, scores.fused.miou_se, scores.fused.per_class)
        return Evaluation(step, scores.single.miou, scores.single.miou_se, scores.single.per_class,
                          dict(scores.validators), fused, loaded["key"])  # fmt: skip

    return evaluator


def evaluation_key(
    cfg: ExperimentConfig, net: NetworkPath, partner: Artifact | None = None, partner_val: Path | None = None
) -> str:
    """What `stage_evaluator`'s numbers depend on besides the network: the evaluation settings, the
    val set, the partner network and its V', the held-out source images. Two evaluations of one
    network under one key are the same numbers, so the run's final evaluation can be the stage's own
    (`stored_evaluation`); none of this is in the stage's artifact key (it is REPORTING there)."""

    def where(path: Path | None) -> str | None:
        return str(Path(path).resolve()) if path is not None else None

    return artifact_key("evaluation", {
        "version": EVALUATION_VERSION, "protocol": cfg.eval.protocol, "fusion_weight": cfg.eval.fusion_weight,
        "val_split": cfg.data.val_split, "val_root": where(net.val_root), "partner": partner.key if partner else None,
        "partner_val": where(partner_val) if partner else None, "source_holdout": cfg.data.source_holdout,
        "holdout_root": where(net.source_root) if cfg.data.source_holdout else None, "validators": list(VALIDATORS),
        **({"reference": where(reference_network(cfg)[0])} if cfg.select.reference else {}),
    })  # fmt: skip


def stored_evaluation(cfg: ExperimentConfig, f_t: Artifact, net: NetworkPath, partner: Artifact | None,
                      partner_val: Path | None) -> dict[str, Any] | None:  # fmt: skip
    """`evaluate_method`'s record from F_T's stage's own evaluation of the network its artifact
    delivers (the last, or the selected checkpoint), when that evaluation was made under the same
    `evaluation_key` (the same partner F_S among it); None when it was not (then evaluate again)."""
    evaluations = read_evaluations(f_t.path)
    step = selected_step(f_t.path, evaluations)
    record = next((e for e in evaluations if e.step == step), None)
    if record is None or record.eval_key != evaluation_key(cfg, net, partner, partner_val):
        return None
    miou_fused, miou_fused_se, iou_fused = record.fused_or_single()
    return {"miou": record.miou, "miou_se": record.miou_se, "iou": record.per_class_iou,
            "miou_fused": miou_fused, "miou_fused_se": miou_fused_se, "iou_fused": iou_fused,
            **{name: record.validators.get(name, math.nan) for name in VALIDATORS}}  # fmt: skip


def evaluate_method(
    cfg: ExperimentConfig,
    f_t_checkpoint: Path,
    f_s_checkpoint: Path | None = None,
    val_translated_root: Path | None = None,
    save_predictions: Path | None = None,
    save_color: bool = False,
    progress: bool = False,
    source_root: Path | None = None,
) -> dict[str, Any]:
    """The method's evaluation on cfg's val split: F_T alone and, given F_S and V' = G(V, source)
    (val_translated_root, Cityscapes layout), the fusion eval.fusion_weight * P_T(v) + (1 - w) * P_S(v')
    and every validator, in one pass (source_miou on the held-out images of `source_root`, F_T's S',
    when data.source_holdout is set).

    Returns miou, miou_se (its bootstrap std over the val images), iou (per class), miou_fused,
    miou_fused_se, iou_fused (= F_T's without F_S), and each validator by name (symda.select.VALIDATORS).
    """
    from symda.adapt.networks import load_segmenter

    val = build_dataset(cfg.data, cfg.synth, "val")
    model_t = load_segmenter(cfg.model, f_t_checkpoint)
    model_s, val_t = None, None
    if f_s_checkpoint is not None:
        if val_translated_root is None:
            raise ValueError("fused evaluation needs V' (val_translated_root) beside F_S")
        model_s = load_segmenter(cfg.model, f_s_checkpoint)
        val_t = build_dataset(with_roots(cfg, target_root=val_translated_root).data, cfg.synth, "val")
        if [s.name for s in val_t.samples] != [s.name for s in val.samples]:
            raise DatasetError(
                f"{val_translated_root}: its val images are not those of {cfg.data.target_root or 'SynthCity'}"
            )
    holdout = source_holdout(cfg, source_root) if source_root is not None else None
    scores = score_network(cfg, model_t, val, model_s, val_t, holdout, save_predictions=save_predictions,
                           save_color=save_color, progress=progress,
                           reference=reference_probabilities(cfg, next(model_t.parameters()).device))  # fmt: skip
    fused = scores.fused or scores.single
    return {"miou": scores.single.miou, "miou_se": scores.single.miou_se, "iou": scores.single.per_class,
            "miou_fused": fused.miou, "miou_fused_se": fused.miou_se, "iou_fused": fused.per_class,
            **scores.validators}  # fmt: skip
