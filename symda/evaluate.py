"""Evaluation: confusion matrix, mIoU and per-class IoU, predictions in Cityscapes format.

Scores are computed at label resolution (logits are upsampled to the label's size), over the whole
split at once (one confusion matrix, not a mean of per-image scores), and a class absent from both
ground truth and prediction is left out of the mean: the official cityscapesscripts definition.

`miou_se` is the evaluation's own noise: the standard deviation of the mIoU over bootstrap resamples
of the val images (each resample sums the per-image confusion matrices of n images drawn with
replacement). Two trials whose mIoU differ by less than about twice it cannot be told apart on this
val split.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from symda.data.dataset import SegmentationDataset
from symda.data.labels import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    SYNTHIA_13_TRAIN_IDS,
    SYNTHIA_16_TRAIN_IDS,
    colorize,
    train_ids_to_label_ids,
)
from symda.io import atomic_write_bytes, png_bytes
from symda.select.dev import DEV_PIXELS_PER_IMAGE, density_ratios, dev_risk
from symda.select.validators import (
    TargetPredictions,
    augmented_views,
    mixed_images,
    mixval_partner,
    validator_scores,
)

PROTOCOL_CLASSES: dict[int, tuple[int, ...]] = {
    19: tuple(range(NUM_CLASSES)),
    16: SYNTHIA_16_TRAIN_IDS,
    13: SYNTHIA_13_TRAIN_IDS,
}


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) int64 matrix, rows = ground truth, cols = prediction; pixels labelled 255 are skipped."""
    valid = label != IGNORE_INDEX
    idx = label[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class Scores:
    """mIoU (in percent) over the protocol's classes and the IoU of each of them (NaN: class absent)."""

    miou: float
    per_class: dict[str, float]
    pixel_accuracy: float
    miou_se: float = math.nan  # bootstrap std of miou over the val images (NaN: not computed)


def class_iou(confs: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) of every class (NaN where it is absent from truth and prediction):
    (..., C, C) confusion matrices -> (..., C) fractions."""
    tp = np.diagonal(confs, axis1=-2, axis2=-1).astype(np.float64)
    fn = confs.sum(axis=-1) - tp
    fp = confs.sum(axis=-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (tp + fp + fn)


def scores_from_confusion(conf: np.ndarray, protocol: int = 19) -> Scores:
    """IoU = TP / (TP + FP + FN) per class, in percent; mIoU = mean over classes with a defined IoU.

    For the 16- and 13-class protocols, predictions of the other classes still count as false
    positives of nothing and false negatives of the true class, as in the field's evaluation.
    """
    classes = PROTOCOL_CLASSES[protocol]
    tp = np.diag(conf).astype(np.float64)
    iou = class_iou(conf)
    per_class = {CLASS_NAMES[c]: float(iou[c] * 100) for c in classes}
    values = np.array([per_class[CLASS_NAMES[c]] for c in classes])
    miou = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    acc = float(tp.sum() / max(conf.sum(), 1) * 100)
    return Scores(miou=miou, per_class=per_class, pixel_accuracy=acc)


BOOTSTRAP_RESAMPLES = 200


def miou_of_confusions(confs: np.ndarray, protocol: int = 19) -> np.ndarray:
    """mIoU (percent) of each of a stack of confusion matrices: (B, C, C) -> (B,), as scores_from_confusion."""
    iou = class_iou(confs)[:, list(PROTOCOL_CLASSES[protocol])] * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no defined class: NaN
        return np.nanmean(iou, axis=1)


def bootstrap_miou_se(
    per_image: np.ndarray, protocol: int = 19, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> float:
    """Std of the mIoU over `resamples` bootstrap resamples of the images: per_image (n, C, C).

    Seeded, so the same predictions always give the same figure; NaN for fewer than 2 images.
    """
    n = len(per_image)
    if n < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    flat = per_image.reshape(n, -1).astype(np.float64)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)])
    confs = (counts.astype(np.float64) @ flat).reshape(resamples, *per_image.shape[1:])
    return float(np.nanstd(miou_of_confusions(confs, protocol), ddof=1))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, H, W) bilinear, align_corners=False."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def label_prediction(probs: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(1, C, h, w) class probabilities -> (H, W) uint8 trainIds at the label's size (upsample, argmax)."""
    # max's indices are argmax's (first maximum on ties) at a third of its CPU time over NCHW channels
    return upsample_logits(probs, size).max(dim=1).indices[0].cpu().numpy().astype(np.uint8)


ProbabilityFn = Callable[[torch.Tensor, list[int]], torch.Tensor]
"""(images (N, 3, h, w), dataset indices) -> class probabilities (N, C, h', w') at any resolution."""


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (inputs are moved there)."""
    return next(model.parameters()).device


def segmenter_probabilities(model: torch.nn.Module) -> ProbabilityFn:
    """Softmax of a segmentation network's main output, as a ProbabilityFn."""

    device = model_device(model)

    def fn(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return torch.softmax(model(images.to(device))["main"].float(), dim=1)

    return fn


def evaluate(
    probabilities: ProbabilityFn,
    dataset: SegmentationDataset,
    protocol: int = 19,
    batch_size: int = 8,
    save_predictions: Path | None = None,
    save_color: bool = False,
    progress: bool = False,
) -> Scores:
    """Score a model (any ProbabilityFn: single or fused) on a labelled dataset: `evaluate_pair`
    without a partner.

    save_predictions writes Cityscapes labelId PNGs named after the inputs ('city/x_leftImg8bit.png'),
    the layout cityscapesscripts' evaluation reads; save_color adds '*_color.png' beside them.
    """
    alone = evaluate_pair(lambda images, indices: (probabilities(images, indices), None), dataset, 1.0,
                          protocol, batch_size, save_predictions, save_color, progress)  # fmt: skip
    return alone.single


def write_prediction(out_dir: Path, name: str, pred: np.ndarray, color: bool = False) -> Path:
    """Write a (H, W) trainId prediction as a Cityscapes labelId PNG at out_dir/name."""
    path = out_dir / name
    atomic_write_bytes(path, png_bytes(train_ids_to_label_ids(pred)))
    if color:
        atomic_write_bytes(path.with_name(path.stem + "_color.png"), png_bytes(colorize(pred)))
    return path


PairFn = Callable[[torch.Tensor, list[int]], tuple[torch.Tensor, torch.Tensor | None]]
"""(images (N, 3, h, w), dataset indices) -> (P_T (N, C, h', w'), P_S of the translated images or None)."""


def _add_target_batch(
    pred: TargetPredictions,
    images: torch.Tensor,
    indices: list[int],
    p_t: torch.Tensor,
    p_s: torch.Tensor | None,
    augment: ProbabilityFn | None,
    dataset: SegmentationDataset,
    reference: ProbabilityFn | None = None,
) -> None:
    """Add one batch's predictions to the validators' summary: P_T (N, C, h, w), the partner's P_S,
    and, when `augment` (F_T's ProbabilityFn), F_T on the augmented copies of the (N, 3, H, W) images
    and on MixVal's mixes with each image's partner (from the batch, or read from `dataset`); the
    reference network's probabilities on the images when `reference`."""
    augmented = mixed = None
    if augment is not None:
        augmented = [back(augment(view, indices)) for view, back in augmented_views(images)]
        mixed = _mixval_predictions(images, indices, p_t, augment, dataset)
    p_ref = reference(images, indices) if reference is not None else None
    pred.add(p_t, indices, p_s, augmented, mixed, p_ref)


def _mixval_predictions(
    images: torch.Tensor,
    indices: list[int],
    p_t: torch.Tensor,
    augment: ProbabilityFn,
    dataset: SegmentationDataset,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_T on each image mixed with its MixVal partner, F_T on the partner), each (N, C, h, w): a
    partner in the batch reuses its images and P_T; one outside it is read and run once."""
    at = {index: k for k, index in enumerate(indices)}
    partners = [mixval_partner(i, len(dataset)) for i in indices]
    outside = sorted({j for j in partners if j not in at})
    if outside:
        extra_images = torch.stack([dataset[j]["image"] for j in outside])
        extra_probs = augment(extra_images, outside)
    pick = {j: (images[at[j]], p_t[at[j]]) for j in partners if j in at}
    pick.update({j: (extra_images[k], extra_probs[k]) for k, j in enumerate(outside)})
    partner_images = torch.stack([pick[j][0] for j in partners])
    partner_probs = torch.stack([pick[j][1].to(p_t.device) for j in partners])
    return augment(mixed_images(images, partner_images), indices), partner_probs


@torch.no_grad()
def unsupervised_scores(
    pair: PairFn,
    dataset: SegmentationDataset,
    batch_size: int = 8,
    augment: ProbabilityFn | None = None,
    source_miou: float = math.nan,
    dev: float = math.nan,
    reference: ProbabilityFn | None = None,
) -> dict[str, float]:
    """Every validator's score (symda.select.VALIDATORS, higher = better) from the target images of
    `dataset` alone: its labels are never read, so a dataset without labels works as well.

    pair gives P_T and the partner's P_S (the agreement validators; NaN without one); augment is F_T's
    ProbabilityFn for aug_agreement and mixval (NaN without it); source_miou and dev, the held-out
    source scores, are the caller's (they read source labels); reference gives the reference network's
    probabilities (agreement_ref; NaN without it). Validators see the networks' output resolution.
    """
    pred = TargetPredictions(NUM_CLASSES)
    for start in range(0, len(dataset), batch_size):
        indices = list(range(start, min(start + batch_size, len(dataset))))
        images = torch.stack([dataset[i]["image"] for i in indices])
        p_t, p_s = pair(images, indices)
        _add_target_batch(pred, images, indices, p_t, p_s, augment, dataset, reference)
    return validator_scores(pred, source_miou, dev)


@dataclass
class PairScores:
    """The final evaluation of the method: F_T alone, fused F_T + F_S, and every validator's score."""

    single: Scores
    fused: Scores | None  # None without F_S
    validators: dict[str, float]  # symda.select.VALIDATORS: NaN where its input is missing


@torch.no_grad()
def evaluate_pair(
    pair: PairFn,
    dataset: SegmentationDataset,
    fusion_weight: float,
    protocol: int = 19,
    batch_size: int = 8,
    save_predictions: Path | None = None,
    save_color: bool = False,
    progress: bool = False,
    augment: ProbabilityFn | None = None,
    source_miou: float = math.nan,
    dev: float = math.nan,
    reference: ProbabilityFn | None = None,
) -> PairScores:
    """Score F_T, the fusion w * P_T + (1 - w) * P_S and the validators in one pass over a labelled dataset.

    Images are fed at the dataset's configured size; probabilities are upsampled to each original
    image's size, so scores are at label resolution, as the field reports them.

    One pass, not three: on Cityscapes val (500 frames at 1024x2048) each network's forward pass is
    the cost. The validators equal `unsupervised_scores` (they read no label). save_predictions writes
    the fused predictions when there is an F_S (F_T's otherwise) as Cityscapes labelId PNGs named after
    the inputs (save_color: colourised beside them).
    """
    per_image: list[np.ndarray] = []  # (C, C) of each image, for the bootstrap
    per_image_fused: list[np.ndarray] = []
    pred_summary = TargetPredictions(NUM_CLASSES)
    p_s = None
    n = len(dataset)
    for start in tqdm(range(0, n, batch_size), desc="evaluate", disable=not progress, leave=False):
        indices = list(range(start, min(start + batch_size, n)))
        items = [dataset[i] for i in indices]
        images = torch.stack([it["image"] for it in items])
        p_t, p_s = pair(images, indices)  # (N, C, h, w) each
        _add_target_batch(pred_summary, images, indices, p_t, p_s, augment, dataset, reference)
        fused = None if p_s is None else fusion_weight * p_t + (1 - fusion_weight) * p_s
        for k, item in enumerate(items):
            label = item.get("full_label")
            pred = label_prediction(p_t[k : k + 1], item["full_size"])
            per_image.append(confusion_matrix(pred, label))
            if fused is not None:
                pred = label_prediction(fused[k : k + 1], item["full_size"])
                per_image_fused.append(confusion_matrix(pred, label))
            if save_predictions is not None:
                write_prediction(
                    Path(save_predictions), dataset.samples[item["index"]].name, pred, save_color
                )
    return PairScores(
        single=_scores_with_se(per_image, protocol),
        fused=_scores_with_se(per_image_fused, protocol) if p_s is not None else None,
        validators=validator_scores(pred_summary, source_miou, dev),
    )


@torch.no_grad()
def save_prediction_figure(
    pair: PairFn,
    dataset: SegmentationDataset,
    fusion_weight: float,
    path: Path,
    indices: list[int],
    height: int = 128,
) -> Path:
    """PNG with one row per val image in `indices`: image | F_T's prediction | the fused prediction
    (grey without F_S) | ground truth, label maps in the Cityscapes palette at the label's size.
    Returns `path` (written atomically)."""
    from PIL import Image

    from symda.pictures import panel, save_panel_grid

    items = [dataset[i] for i in indices]
    p_t, p_s = pair(torch.stack([it["image"] for it in items]), indices)
    rows = []
    for k, item in enumerate(items):
        with Image.open(dataset.samples[item["index"]].image) as im:
            image = np.asarray(im.convert("RGB"))
        pred = label_prediction(p_t[k : k + 1], item["full_size"])
        fused = None
        if p_s is not None:
            fused = label_prediction(fusion_weight * p_t[k : k + 1] + (1 - fusion_weight) * p_s[k : k + 1],
                                     item["full_size"])  # fmt: skip
        grey = np.full(pred.shape, 128, dtype=np.uint8)
        truth = item.get("full_label")
        rows.append([
            panel(image, height, nearest=False),
            panel(colorize(pred), height, True),
            panel(colorize(fused) if fused is not None else grey, height, True),
            panel(colorize(truth) if truth is not None else grey, height, True),
        ])  # fmt: skip
    return save_panel_grid(("image", "F_T", "fused F_T + F_S", "ground truth"), rows, path)


def _scores_with_se(per_image: list[np.ndarray], protocol: int) -> Scores:
    """Scores of the summed confusion, with the bootstrap standard error over the images."""
    stack = np.stack(per_image) if per_image else np.zeros((0, NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    scores = scores_from_confusion(stack.sum(axis=0), protocol)
    scores.miou_se = bootstrap_miou_se(stack, protocol)
    return scores


# ------------------------------------------------------------------------- DEV (symda.select.dev)


@torch.no_grad()
def embedded_pixels(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    indices: list[int],
    labelled: bool,
    batch_size: int = 8,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings (M, D), per-pixel cross-entropy (M,) or None) of DEV_PIXELS_PER_IMAGE pixels of each
    image `indices` of `dataset`, at the resolution of the network's classifier input. `labelled`
    (held-out source images): only labelled pixels are drawn and their loss is returned; otherwise
    (target images) no label is read, whether the dataset has them or not."""
    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    feats: list[torch.Tensor] = []
    losses: list[torch.Tensor] = []
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            items = [dataset[i] for i in chunk]
            captured.clear()
            logits = model(torch.stack([it["image"] for it in items]).to(model_device(model)))["main"]
            emb = captured[-1].float()  # (N, D, h, w)
            n, d, h, w = emb.shape
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
            for k, (item, index) in enumerate(zip(items, chunk, strict=True)):
                gen = torch.Generator().manual_seed(int(index))
                order = torch.randperm(h * w, generator=gen)
                if labelled:
                    lab = F.interpolate(item["label"][None, None].float(), size=(h, w), mode="nearest")
                    lab = lab.flatten().long()
                    order = order[lab[order] != IGNORE_INDEX]
                pick = order[:DEV_PIXELS_PER_IMAGE].to(emb.device)
                feats.append(emb[k].reshape(d, h * w)[:, pick].T.cpu())
                if labelled:
                    target = lab.to(emb.device)[pick]
                    pixel_logits = logits[k].reshape(-1, h * w)[:, pick].T
                    losses.append(F.cross_entropy(pixel_logits, target, reduction="none").cpu())
    finally:
        hook.remove()
    if not feats:
        return torch.zeros(0, 0), None
    return torch.cat(feats), (torch.cat(losses) if labelled else None)


def dev_score(
    model: torch.nn.Module, holdout: SegmentationDataset, target: SegmentationDataset, batch_size: int = 8
) -> float:
    """-DEV of `model`: held-out labelled source images, unlabelled target images (their labels are
    never read). NaN with fewer than 2 held-out images (one trains the domain classifier, one
    validates)."""
    if len(holdout) < 2 or len(target) == 0:
        return math.nan
    src_fit, src_val = list(range(0, len(holdout), 2)), list(range(1, len(holdout), 2))
    source, _ = embedded_pixels(model, holdout, src_fit, True, batch_size)
    validation, losses = embedded_pixels(model, holdout, src_val, True, batch_size)
    tgt, _ = embedded_pixels(model, target, list(range(len(target))), False, batch_size)
    if len(source) == 0 or len(validation) < 2 or losses is None:
        return math.nan
    weights = density_ratios(source, tgt, validation)
    return -dev_risk(weights, losses.double().numpy())
