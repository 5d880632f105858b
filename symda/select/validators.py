"""Validators: scores of a network from its predictions on unlabelled target images; higher = better.

A validator never sees a target label. What it reads is summarised image by image in
`TargetPredictions` (sums and samples, so a pass over Cityscapes val keeps a few MB, not every
probability map), and each validator is a plain function of that summary. `TargetPredictions.add`
takes a batch of softmax outputs; scores do not depend on how the images were batched (SND samples
each image's pixels from a generator seeded by the image's dataset index).

The validators (symda.select.VALIDATORS has their one-line descriptions):
- agreement, agreement_miou: F_T(v) against its partner F_S(v') (the image's translation): two views
  with independent errors bound each other's error (co-training); agreement_miou weights the
  classes as mIoU does, where pixel agreement is dominated by road and building;
- agreement_ref, agreement_ref_miou: the same against a reference network that made no pseudo labels
  (select.reference: an earlier run's F_T, say). F_S made the labels F_T self-trains on, so F_T's
  agreement with F_S rises with self-training whether or not F_T improves; a reference cannot be
  pulled along that way;
- entropy, info_max: confidence on the target; info_max also rewards a diverse class marginal, so a
  network that predicts one class everywhere with confidence scores low;
- snd: soft neighbourhood density (Saito et al., ICCV 2021), computed as its authors did for
  segmentation: 100 random pixels per image of the softmax output, L2-normalised, similarities
  scaled by 1 / 0.05 = 20, the mean entropy of each sample's softmax over the others;
- aug_agreement: stability of the prediction under a horizontal flip and a 3/4 rescale;
- mixval: MixVal (Hu et al., NeurIPS 2023) made dense: each image a is mixed with a fixed partner b
  (`mixval_partner`) as 0.55 a + 0.45 b, the mix's prediction is scored against a's own prediction
  (MixVal's pseudo label), pixel by pixel, separately where a's and b's predictions name the same
  class (intra) and another (inter); the score is the mean of the two accuracies (skada's "both").
  A network that labels its own pseudo labels cannot raise it by agreeing with a partner;
- source_miou, dev: computed by the caller from held-out labelled source images (labels of the source
  only) and passed to `validator_scores`: the mIoU there, and DEV's importance-weighted source risk
  (symda.select.dev).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from symda.select import VALIDATORS

SND_PIXELS_PER_IMAGE = 100
SND_TEMPERATURE = 0.05  # similarities scaled by 20, as SND's authors did for segmentation
AUG_SCALE = 0.75
MIXVAL_LAMBDA = 0.55  # MixVal's default: the mix stays a's image, with b's strong enough to probe it


@dataclass
class TargetPredictions:
    """One network's predictions on a set of unlabelled target images, summarised image by image.

    pixels: pixels seen (at the network's output resolution); entropy: their summed per-pixel entropy
    normalised by ln C; class_mass: (C,) summed probabilities; snd_samples: (k, C) softmax vectors of
    k sampled pixels per image; pair_confusion: (C, C) counts of (argmax P_T, argmax P_partner), or None
    without a partner; aug_agree / aug_pixels: pixels where the augmented predictions agree with the
    plain one, and pixels compared (0 without augmented predictions); mix_hits / mix_pixels: for
    MixVal, pixels where the mix's prediction equals the dominant image's, and pixels compared,
    each as [intra, inter] (the two images' predictions name the same class / another);
    ref_confusion: like pair_confusion, against the reference network (None without one).
    """

    num_classes: int
    pixels: int = 0
    entropy: float = 0.0
    class_mass: np.ndarray = field(init=False)
    snd_samples: list[torch.Tensor] = field(default_factory=list)
    pair_confusion: np.ndarray | None = None
    aug_agree: float = 0.0
    aug_pixels: int = 0
    ref_confusion: np.ndarray | None = None
    mix_hits: list[int] = field(default_factory=lambda: [0, 0])
    mix_pixels: list[int] = field(default_factory=lambda: [0, 0])

    def __post_init__(self) -> None:
        self.class_mass = np.zeros(self.num_classes)

    def add(
        self,
        probs: torch.Tensor,
        indices: list[int],
        partner: torch.Tensor | None = None,
        augmented: list[torch.Tensor] | None = None,
        mixed: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference: torch.Tensor | None = None,
    ) -> None:
        """Add one batch: probs (N, C, h, w) softmax of the network on images `indices` of the set;
        partner (N, C, h', w') the partner's on the same images (resized to (h, w) when it differs);
        augmented: the network's probabilities on augmented copies, mapped back to the image's frame
        (each (N, C, h'', w''), resized to (h, w)); mixed: MixVal's (probabilities on the mixes
        `mixed_images` makes, the network's probabilities on each image's mixing partner), each
        (N, C, h'', w''), resized to (h, w); reference: the reference network's (N, C, h', w') on
        the same images."""
        probs = probs.float()
        n, c, h, w = probs.shape
        if c != self.num_classes:
            raise ValueError(
                f"TargetPredictions: probabilities have {c} classes, expected {self.num_classes}"
            )
        ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1) / math.log(c)  # (N, h, w)
        self.pixels += ent.numel()
        self.entropy += float(ent.double().sum())
        self.class_mass += probs.sum(dim=(0, 2, 3)).double().cpu().numpy()
        flat = probs.permute(0, 2, 3, 1).reshape(n, h * w, c)
        for k, index in enumerate(indices):
            gen = torch.Generator().manual_seed(int(index))
            pick = torch.randperm(h * w, generator=gen)[:SND_PIXELS_PER_IMAGE].to(flat.device)
            self.snd_samples.append(flat[k, pick].cpu())
        pred = probs.argmax(dim=1)  # (N, h, w)
        if partner is not None:
            conf = _confusion(pred, partner, c)
            self.pair_confusion = conf if self.pair_confusion is None else self.pair_confusion + conf
        if reference is not None:
            conf = _confusion(pred, reference, c)
            self.ref_confusion = conf if self.ref_confusion is None else self.ref_confusion + conf
        for aug in augmented or ():
            self.aug_agree += float((_resized(aug.float(), (h, w)).argmax(dim=1) == pred).sum())
            self.aug_pixels += pred.numel()
        if mixed is not None:
            on_mix, of_partner = (_resized(x.float(), (h, w)).argmax(dim=1) for x in mixed)
            hit = on_mix == pred
            for kind, where in enumerate((of_partner == pred, of_partner != pred)):  # intra, inter
                self.mix_hits[kind] += int((hit & where).sum())
                self.mix_pixels[kind] += int(where.sum())


def _confusion(pred: torch.Tensor, other: torch.Tensor, c: int) -> np.ndarray:
    """(C, C) counts of (pred, argmax other) over the pixels of pred (N, h, w); other (N, C, h', w')
    is resized to (h, w)."""
    other_pred = _resized(other.float(), tuple(pred.shape[-2:])).argmax(dim=1)
    pairs = (pred * c + other_pred).flatten().cpu()
    return torch.bincount(pairs, minlength=c * c).reshape(c, c).numpy()


def _resized(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if probs.shape[-2:] == size:
        return probs
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)


def augmented_views(
    images: torch.Tensor,
) -> list[tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]]:
    """The augmentations of aug_agreement: [(augmented images, map of its probabilities back)], for
    (N, 3, H, W) images: a horizontal flip (flipped back), and the images at AUG_SCALE of their size
    (the caller resizes predictions to the plain prediction's size)."""
    h, w = images.shape[-2:]
    small = (max(1, round(h * AUG_SCALE)), max(1, round(w * AUG_SCALE)))
    return [
        (torch.flip(images, dims=[3]), lambda p: torch.flip(p, dims=[3])),
        (F.interpolate(images, size=small, mode="bilinear", align_corners=False), lambda p: p),
    ]


def mixval_partner(index: int, n: int) -> int:
    """The image mixed into image `index` of an n-image set: its neighbour index ^ 1 (0<->1, 2<->3, ...;
    the last of an odd set takes the one before it). Fixed by the index, so scores do not depend on
    the batching, and with an even batch size the partner is in the same batch."""
    partner = index ^ 1
    return partner if partner < n else max(index - 1, 0)


def mixed_images(images: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """MixVal's probes: (N, 3, H, W) images mixed with their partners' (N, 3, H, W), image-dominant."""
    return MIXVAL_LAMBDA * images + (1.0 - MIXVAL_LAMBDA) * partners


# ------------------------------------------------------------------------------------ the validators


def entropy(pred: TargetPredictions) -> float:
    """Minus the mean normalised per-pixel entropy, in [-1, 0]."""
    return -pred.entropy / pred.pixels if pred.pixels else math.nan


def info_max(pred: TargetPredictions) -> float:
    """H(mean prediction) - mean H(prediction), both normalised by ln C: in [-1, 1]."""
    if not pred.pixels:
        return math.nan
    marginal = pred.class_mass / pred.class_mass.sum()
    h_marginal = float(-(marginal * np.log(np.clip(marginal, 1e-12, None))).sum()) / math.log(
        pred.num_classes
    )
    return h_marginal + entropy(pred)


def snd(pred: TargetPredictions, temperature: float = SND_TEMPERATURE, chunk: int = 256) -> float:
    """Soft neighbourhood density: the mean entropy of each sampled pixel's softmax(similarity / T)
    over the other samples (similarity = cosine of softmax vectors).

    Rows go in chunks, so 50k samples (Cityscapes val) never hold the whole 50k x 50k matrix, and a
    chunk of 256 rows stays in cache. Per row, with s = similarities / T and e = exp(s - 1/T) (cosines
    are at most 1, so this fixed shift keeps exp in range; a sample's own e is 0): H = log sum e + 1/T
    - sum(e s) / sum e. Three passes over a chunk, against log_softmax's six: 8x as fast on this CPU."""
    if len(pred.snd_samples) == 0:
        return math.nan
    x = F.normalize(torch.cat(pred.snd_samples).float(), dim=1)  # (M, C)
    m = len(x)
    if m < 2:
        return math.nan
    top = 1.0 / temperature
    total = 0.0
    for start in range(0, m, chunk):
        sim = torch.mm(x[start : start + chunk], x.T).mul_(top)  # (rows, M)
        e = (sim - top).exp_()
        rows = torch.arange(len(sim))
        e[rows, rows + start] = 0.0  # a sample is not its own neighbour
        z = e.sum(dim=1)
        total += float((z.log() + top - torch.linalg.vecdot(e, sim) / z).double().sum())
    return total / m


def _agreement(conf: np.ndarray | None) -> float:
    return float(np.trace(conf) / conf.sum()) if conf is not None and conf.sum() else math.nan


def _agreement_miou(conf: np.ndarray | None) -> float:
    if conf is None or not conf.sum():
        return math.nan
    conf = conf.astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - np.diag(conf)
    present = union > 0
    return float((np.diag(conf)[present] / union[present]).mean())


def agreement(pred: TargetPredictions) -> float:
    """Fraction of pixels where the network and its partner predict the same class."""
    return _agreement(pred.pair_confusion)


def agreement_miou(pred: TargetPredictions) -> float:
    """mIoU (in [0, 1]) of the network's prediction scored against its partner's as if it were the
    label: mean over the classes either predicts of |both| / |either|."""
    return _agreement_miou(pred.pair_confusion)


def agreement_ref(pred: TargetPredictions) -> float:
    """Fraction of pixels where the network and the reference network predict the same class."""
    return _agreement(pred.ref_confusion)


def agreement_ref_miou(pred: TargetPredictions) -> float:
    """agreement_miou against the reference network."""
    return _agreement_miou(pred.ref_confusion)


def aug_agreement(pred: TargetPredictions) -> float:
    """Fraction of pixels where the augmented copies' predictions equal the plain one (mean of all)."""
    return pred.aug_agree / pred.aug_pixels if pred.aug_pixels else math.nan


def mixval(pred: TargetPredictions) -> float:
    """MixVal: the mean of the mix's pixel accuracy against the dominant image's prediction where the
    two images' predictions name the same class (intra) and where they differ (inter); one alone
    when the other has no pixels."""
    accs = [hits / px for hits, px in zip(pred.mix_hits, pred.mix_pixels, strict=True) if px]
    return float(np.mean(accs)) if accs else math.nan


TARGET_VALIDATORS = {
    "agreement": agreement,
    "agreement_miou": agreement_miou,
    "agreement_ref": agreement_ref,
    "agreement_ref_miou": agreement_ref_miou,
    "entropy": entropy,
    "info_max": info_max,
    "snd": snd,
    "aug_agreement": aug_agreement,
    "mixval": mixval,
}


def validator_scores(
    pred: TargetPredictions, source_miou: float = math.nan, dev: float = math.nan
) -> dict[str, float]:
    """{validator: score} for every validator in symda.select.VALIDATORS (NaN where its input is
    missing: agreement without a partner, agreement_ref without a reference, source_miou and dev
    without held-out source images)."""
    scores = {name: fn(pred) for name, fn in TARGET_VALIDATORS.items()}
    scores["source_miou"] = float(source_miou)
    scores["dev"] = float(dev)
    return {name: scores[name] for name in VALIDATORS}
