"""Write pseudo labels for the target train split in the Cityscapes layout, in two streaming passes.

Pass 1 (class_quantile only) runs the two paths over every image and feeds a per-class histogram of
M_conf; pass 2 runs them again (recomputing is cheaper than holding 2,975 full-size maps, the memory
problem of BDL's script), thresholds, and writes per image. Where pass 1's maps fit in `keep_mb`
(5 bytes a pixel: 65 MB for SynthCity's), pass 2 reads them back instead of recomputing them. Written per image:
- `out_root/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png`: the pseudo label as Cityscapes labelIds
  (ignored pixels -> 0 'unlabeled', which the loader maps back to 255);
- `out_root/confidence/{split}/{city}/{stem}_conf.png`: round(255 * M_conf), 8-bit greyscale;
- `out_root/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`: the image, hard-linked (copied where
  links are impossible),
so `list_cityscapes(out_root, split, with_labels=True)` reads images and pseudo labels directly. Plus
`out_root/pseudo_stats.json` and the figure `out_root/pseudo_labels.png`.

Every file is written atomically, but the folder is built in place: the caller hands a fresh out_root
(the artifact store's work folder, renamed into place when the stage finishes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from symda.config import PseudoConfig
from symda.data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX, image_dir
from symda.data.dataset import SegmentationDataset
from symda.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, colorize, train_ids_to_label_ids
from symda.evaluate import confusion_matrix, scores_from_confusion
from symda.io import atomic_write_bytes, link_or_copy, png_bytes, write_json
from symda.pictures import panel, save_panel_grid
from symda.pseudo.confidence import class_argmax, confidence_map
from symda.pseudo.thresholds import StreamingClassHistogram, class_thresholds, global_thresholds, select

PairProbabilityFn = Callable[[torch.Tensor, list[int]], tuple[torch.Tensor, torch.Tensor | None]]
"""(images (N, 3, h, w), dataset indices) -> (P_T (N, C, h', w'), P_S (N, C, h', w') or None).

P_S None = the symmetric path is off. The function looks up anything else it needs (e.g. the translated
image T' = G(t, S) for F_S) by dataset index.
"""

CONF_SUFFIX = "_conf.png"
STATS_FILE = "pseudo_stats.json"
FIGURE_FILE = "pseudo_labels.png"


@dataclasses.dataclass
class PixelMaps:
    """Per-image results at the image's full size: pred, m_conf, m_prob (H, W); m_consis, agree or None."""

    index: int
    pred: torch.Tensor  # (H, W) int64, argmax of the (fused) P
    m_conf: torch.Tensor  # (H, W) float32
    m_prob: torch.Tensor
    m_consis: torch.Tensor | None
    agree: torch.Tensor | None  # (H, W) bool, argmax P_T == argmax P_S
    pred_t: torch.Tensor  # (H, W) int64, argmax P_T
    pred_s: torch.Tensor | None


class MapsMemo:
    """Each image's full-size maps that only pseudo.fusion_weight and pseudo.consistency change, kept
    for the next labelling by the same networks: pred, m_prob, m_consis, pred_t, pred_s of `images`
    images, per (fusion_weight, consistency).

    The trials one Ray actor runs in turn label T with the same round-0 F_T and F_S and differ in
    threshold, tau, quantile, cap and conf_weight: all of that is cheap arithmetic on these maps,
    while upsampling 2 x 19 probability channels to full size and the soft consistency's three
    entropies are most of a labelling. M_conf is rebuilt with confidence_map's own expression, so
    labels from the memo are bit-identical (test). As KeptMaps, one array per map allocated at a
    setting's first image (uint8 class maps, float32 scores: 11 bytes a pixel with both paths and a
    consistency), so that kept maps do not fragment the heap; a setting whose arrays would pass
    `limit_bytes`, or an image of another size than the first, is not kept.
    """

    def __init__(self, limit_bytes: float, images: int) -> None:
        self.limit_bytes, self.images, self.nbytes = limit_bytes, images, 0
        self.kept: dict[tuple[float, str], dict[str, torch.Tensor | None]] = {}
        self.filled: dict[tuple[float, str], torch.Tensor] = {}  # (images,) bool
        self.refused: set[tuple[float, str]] = set()

    def add(self, cfg: PseudoConfig, maps: PixelMaps) -> None:
        setting = (cfg.fusion_weight, cfg.consistency)
        if setting in self.refused or not 0 <= maps.index < self.images:
            return
        fields = {"pred": maps.pred, "m_prob": maps.m_prob, "m_consis": maps.m_consis,
                  "pred_t": maps.pred_t, "pred_s": maps.pred_s}  # fmt: skip
        if setting not in self.kept:
            dtypes = {name: torch.float32 if name.startswith("m_") else torch.uint8 for name in fields}
            h, w = maps.pred.shape
            size = sum(self.images * h * w * dtypes[n].itemsize for n, t in fields.items() if t is not None)
            if self.nbytes + size > self.limit_bytes:
                self.refused.add(setting)
                return
            self.nbytes += size
            self.kept[setting] = {n: torch.empty((self.images, h, w), dtype=dtypes[n]) if t is not None else None
                                  for n, t in fields.items()}  # fmt: skip
            self.filled[setting] = torch.zeros(self.images, dtype=torch.bool)
        kept = self.kept[setting]
        if kept["pred"].shape[1:] != maps.pred.shape:
            self.nbytes -= sum(t.numel() * t.element_size() for t in kept.values() if t is not None)
            del self.kept[setting], self.filled[setting]
            self.refused.add(setting)
            return
        for name, tensor in fields.items():
            if kept[name] is not None:
                kept[name][maps.index] = tensor  # NUM_CLASSES < 256: class maps fit uint8
        self.filled[setting][maps.index] = True

    def get(self, cfg: PseudoConfig, index: int) -> PixelMaps | None:
        setting = (cfg.fusion_weight, cfg.consistency)
        if setting not in self.kept or not 0 <= index < self.images or not self.filled[setting][index]:
            return None
        kept = {name: t[index] if t is not None else None for name, t in self.kept[setting].items()}
        m_prob, m_consis = kept["m_prob"], kept["m_consis"]
        m_conf = m_prob if m_consis is None else cfg.conf_weight * m_prob + (1.0 - cfg.conf_weight) * m_consis
        pred_t = kept["pred_t"].long()
        pred_s = kept["pred_s"].long() if kept["pred_s"] is not None else None
        agree = (pred_t == pred_s) if pred_s is not None else None
        return PixelMaps(index, kept["pred"].long(), m_conf, m_prob, m_consis, agree, pred_t, pred_s)


@torch.no_grad()
def iter_full_size_probabilities(
    prob_fn: PairProbabilityFn,
    dataset: SegmentationDataset,
    indices: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "pseudo",
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Yield (index, P_T (1, C, H, W), P_S (1, C, H, W) or None) of each image at its full size.

    The model runs on batches at the dataset's size; probabilities are upsampled (bilinear, which keeps
    them a distribution) to each image's original size, so every map made of them is at label
    resolution. Only one batch is ever held.
    """
    indices = list(range(len(dataset))) if indices is None else list(indices)
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not progress, leave=False):
        batch = indices[start : start + batch_size]
        items = [dataset[i] for i in batch]
        p_t, p_s = prob_fn(torch.stack([it["image"] for it in items]), batch)
        for k, item in enumerate(items):
            size = tuple(item["full_size"])
            pt = F.interpolate(p_t[k : k + 1].float(), size=size, mode="bilinear", align_corners=False)
            ps = None
            if p_s is not None:
                ps = F.interpolate(p_s[k : k + 1].float(), size=size, mode="bilinear", align_corners=False)
            yield item["index"], pt, ps


def iter_pixel_maps(
    prob_fn: PairProbabilityFn,
    dataset: SegmentationDataset,
    cfg: PseudoConfig,
    indices: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "pseudo",
    memo: MapsMemo | None = None,
) -> Iterator[PixelMaps]:
    """Yield the confidence maps of each image at its full size, one image at a time
    (`iter_full_size_probabilities` says how). With `memo`, a batch whose maps it holds is read from
    it (no image is loaded, no network runs), and computed maps are added.
    """

    indices = list(range(len(dataset))) if indices is None else list(indices)
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not progress, leave=False):
        batch = indices[start : start + batch_size]
        remembered = [memo.get(cfg, i) for i in batch] if memo is not None else []
        if remembered and all(m is not None for m in remembered):
            yield from remembered
            continue
        yield from _pixel_maps(iter_full_size_probabilities(prob_fn, dataset, batch, len(batch)), cfg, memo)


def _pixel_maps(
    probabilities: Iterator[tuple[int, torch.Tensor, torch.Tensor | None]],
    cfg: PseudoConfig,
    memo: MapsMemo | None,
) -> Iterator[PixelMaps]:
    """The PixelMaps of each (index, P_T, P_S) at full size, added to `memo` when there is one."""
    for index, pt, ps in probabilities:
        pred, m_conf, m_prob, m_consis = confidence_map(
            pt, ps, cfg.fusion_weight, cfg.consistency, cfg.conf_weight
        )
        pred_t = class_argmax(pt)[0]
        pred_s = class_argmax(ps)[0] if ps is not None else None
        maps = PixelMaps(
            index=index,
            pred=pred[0],
            m_conf=m_conf[0],
            m_prob=m_prob[0],
            m_consis=m_consis[0] if m_consis is not None else None,
            agree=(pred_t == pred_s) if pred_s is not None else None,
            pred_t=pred_t,
            pred_s=pred_s,
        )
        if memo is not None:
            memo.add(cfg, maps)
        yield maps


@dataclasses.dataclass
class LabelMaps:
    """What pass 2 needs of an image's PixelMaps: pred (H, W) int64 and m_conf (H, W) float32, and the
    sums its statistics take of the rest (None without M_consis / without P_S)."""

    index: int
    pred: torch.Tensor
    m_conf: torch.Tensor
    consis_sum: float | None
    agree_pixels: int | None

    @classmethod
    def of(cls, maps: PixelMaps) -> LabelMaps:
        consis = float(maps.m_consis.double().sum()) if maps.m_consis is not None else None
        agree = int(maps.agree.sum()) if maps.agree is not None else None
        return cls(maps.index, maps.pred, maps.m_conf, consis, agree)


class KeptMaps:
    """Pass 1's LabelMaps of `images` images, kept for pass 2 when they all fit in `limit_bytes`.

    5 bytes a pixel (pred as uint8, m_conf float32) in two arrays allocated at the first image: small
    tensors kept one by one between a pass's large temporaries fragment the heap, which then holds
    several times their size (measured: 900 MB of resident memory for 200 MB of maps). Images of
    another size than the first, or more than fit, and nothing is kept (`complete` is False).
    """

    def __init__(self, limit_bytes: float, images: int) -> None:
        self.limit_bytes, self.images = limit_bytes, images
        self.pred: torch.Tensor | None = None  # (images, H, W) uint8
        self.m_conf: torch.Tensor | None = None  # (images, H, W) float32
        self.rest: list[tuple[int, float | None, int | None]] = []
        self.keeping = limit_bytes > 0 and images > 0

    def add(self, maps: PixelMaps) -> None:
        if not self.keeping:
            return
        h, w = maps.pred.shape
        if self.pred is None and self.images * h * w * 5 <= self.limit_bytes:
            self.pred = torch.empty((self.images, h, w), dtype=torch.uint8)
            self.m_conf = torch.empty((self.images, h, w), dtype=torch.float32)
        if self.pred is None or self.pred.shape[1:] != (h, w) or len(self.rest) == self.images:
            self.keeping, self.pred, self.m_conf, self.rest = False, None, None, []
            return
        k = len(self.rest)
        self.pred[k], self.m_conf[k] = maps.pred, maps.m_conf
        label_maps = LabelMaps.of(maps)
        self.rest.append((label_maps.index, label_maps.consis_sum, label_maps.agree_pixels))

    @property
    def complete(self) -> bool:
        return self.keeping and len(self.rest) == self.images

    def __iter__(self) -> Iterator[LabelMaps]:
        for k, (index, consis_sum, agree_pixels) in enumerate(self.rest):
            yield LabelMaps(index, self.pred[k].long(), self.m_conf[k], consis_sum, agree_pixels)


def compute_thresholds(
    prob_fn: PairProbabilityFn,
    dataset: SegmentationDataset,
    cfg: PseudoConfig,
    batch_size: int = 8,
    progress: bool = False,
    keep: KeptMaps | None = None,
    memo: MapsMemo | None = None,
) -> torch.Tensor:
    """(C,) thresholds of cfg.threshold: global = tau (no pass over the data); class_quantile = pass 1,
    whose maps go to `keep` when given (and are read from / added to `memo`)."""
    if cfg.threshold == "global":
        return global_thresholds(cfg.tau, NUM_CLASSES)
    if cfg.threshold != "class_quantile":
        raise ValueError(f"pseudo.threshold: {cfg.threshold!r} is not one of ['global', 'class_quantile']")
    hist = StreamingClassHistogram(NUM_CLASSES, cfg.bins)
    for maps in iter_pixel_maps(prob_fn, dataset, cfg, None, batch_size, progress, "pseudo pass 1", memo):
        hist.update(maps.pred, maps.m_conf)
        if keep is not None:
            keep.add(maps)
    return class_thresholds(hist, cfg.quantile, cfg.cap)


def _relative_name(image: Path, target_root: Path, split: str) -> str:
    """'city/city_seq_frame_leftImg8bit.png' of an image under target_root/leftImg8bit/split."""
    split_dir = image_dir(Path(target_root)) / split
    try:
        name = Path(image).relative_to(split_dir).as_posix()
    except ValueError as err:
        raise ValueError(
            f"{image}: not under {split_dir} (target_root={target_root}, split={split})"
        ) from err
    if not name.endswith(IMAGE_SUFFIX):
        raise ValueError(f"{image}: expected a Cityscapes image name ending in {IMAGE_SUFFIX}")
    return name


def _true_label(
    labelled_dataset: SegmentationDataset, dataset: SegmentationDataset, index: int
) -> np.ndarray:
    """(H, W) uint8 trainIds of image `index` from the labelled twin of `dataset` (diagnostics only)."""
    mine, theirs = dataset.samples[index], labelled_dataset.samples[index]
    if mine.name != theirs.name or theirs.label is None:
        raise ValueError(
            f"labelled_dataset: sample {index} is {theirs.name!r} (label {theirs.label}), expected a labelled "
            f"{mine.name!r}: pass the same split listed with labels"
        )
    return labelled_dataset.decode_label(theirs.label)


def _per_class(values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(CLASS_NAMES, values, strict=True)}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


@torch.no_grad()
def generate_pseudo_labels(
    prob_fn: PairProbabilityFn,
    dataset: SegmentationDataset,
    cfg: PseudoConfig,
    out_root: Path,
    target_root: Path,
    split: str = "train",
    labelled_dataset: SegmentationDataset | None = None,
    batch_size: int = 8,
    progress: bool = False,
    figure_images: int = 4,
    keep_mb: float = 0.0,
    memo: MapsMemo | None = None,
) -> dict:
    """Write pseudo labels, confidence maps and linked images of `dataset` under out_root; return stats.

    dataset: the target train split, evaluation view (items "image", "full_size", "name"; labels unused).
    target_root: the Cityscapes root the dataset's images live in (their paths below
    target_root/leftImg8bit/split give the layout written). labelled_dataset: the same images with their
    true labels, for the `diag_*` statistics only (training never reads them). figure_images: rows of
    out_root/pseudo_labels.png (0: no figure). Memory is one batch plus O(C * bins), whatever len(dataset),
    plus pass 1's maps where they fit in keep_mb (pass 2 then reads them instead of recomputing).
    memo: full-size maps of an earlier labelling by the same prob_fn (MapsMemo), read and added to.

    cfg.true_target_labels (a diagnostic that reads labelled_dataset's labels) writes instead: "kept",
    the true label at the kept pixels; "correct", the kept pseudo labels that are right (the wrong ones
    ignored); "all", the true label at every pixel. The statistics describe what is written.

    Stats (also in out_root/pseudo_stats.json): thresholds {class: tau_c}; coverage (kept / all pixels);
    coverage_per_class (kept / predicted, per predicted class; NaN if never predicted); class_fraction
    (share of each class among kept pixels); mean_conf; mean_consis and agreement (argmax P_T == argmax
    P_S), NaN without P_S; with labelled_dataset: diag_pseudo_precision_per_class, diag_pseudo_accuracy
    (kept pixels with a true label), diag_pred_miou and diag_pred_iou_per_class (unthresholded argmax P).
    """
    out_root = Path(out_root)
    if cfg.true_target_labels != "none" and labelled_dataset is None:
        raise ValueError(f"pseudo.true_target_labels={cfg.true_target_labels!r} reads the target train labels: "
                         "pass labelled_dataset")  # fmt: skip
    pass_1_maps = KeptMaps(keep_mb * 2**20, len(dataset))
    thresholds = compute_thresholds(prob_fn, dataset, cfg, batch_size, progress, pass_1_maps, memo)
    pass_2 = pass_1_maps if pass_1_maps.complete else map(LabelMaps.of, iter_pixel_maps(
        prob_fn, dataset, cfg, None, batch_size, progress, "pseudo pass 2", memo
    ))  # fmt: skip

    kept = np.zeros(NUM_CLASSES, dtype=np.int64)
    predicted = np.zeros(NUM_CLASSES, dtype=np.int64)
    pixels = 0
    sum_conf = sum_consis = 0.0
    agree_pixels, consis_pixels = 0, 0
    symmetric = False  # whether prob_fn returned P_S
    conf_pseudo = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    conf_pred = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for maps in pass_2:
        pseudo = select(maps.pred, maps.m_conf, thresholds).cpu().numpy()
        if cfg.true_target_labels != "none":  # the headroom diagnostic: true labels in place of pseudo ones
            truth = _true_label(labelled_dataset, dataset, maps.index).astype(pseudo.dtype)
            if cfg.true_target_labels == "all":
                pseudo = truth
            elif cfg.true_target_labels == "kept":
                pseudo = np.where(pseudo == IGNORE_INDEX, IGNORE_INDEX, truth).astype(pseudo.dtype)
            else:  # "correct": the kept pseudo labels that are right, the wrong ones ignored
                pseudo = np.where(pseudo == truth, pseudo, IGNORE_INDEX).astype(pseudo.dtype)
        pred = maps.pred.cpu().numpy().astype(np.uint8)
        m_conf = maps.m_conf.cpu()
        name = _relative_name(dataset.samples[maps.index].image, target_root, split)
        stem = name[: -len(IMAGE_SUFFIX)]
        # compress_level 1: several times faster to write than the default, for files self-training reads soon
        label_png = png_bytes(train_ids_to_label_ids(pseudo), compress_level=1)
        atomic_write_bytes(out_root / "gtFine" / split / (stem + LABEL_SUFFIX), label_png)
        conf8 = (m_conf * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        atomic_write_bytes(
            out_root / "confidence" / split / (stem + CONF_SUFFIX), png_bytes(conf8, compress_level=1)
        )
        link_or_copy(dataset.samples[maps.index].image, out_root / "leftImg8bit" / split / name)

        pixels += pred.size
        predicted += np.bincount(pred.reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES]
        kept += np.bincount(pseudo[pseudo != IGNORE_INDEX], minlength=NUM_CLASSES)[:NUM_CLASSES]
        sum_conf += float(m_conf.double().sum())
        if maps.consis_sum is not None:
            sum_consis += maps.consis_sum
            consis_pixels += pred.size
        if maps.agree_pixels is not None:
            symmetric = True
            agree_pixels += maps.agree_pixels
        if labelled_dataset is not None:
            label = _true_label(labelled_dataset, dataset, maps.index)
            if label.shape != pred.shape:
                raise ValueError(
                    f"{labelled_dataset.samples[maps.index].label}: label is {label.shape}, image is {pred.shape}"
                )
            conf_pred += confusion_matrix(pred, label)
            # Rows = truth, cols = pseudo label; pixels the threshold dropped are left out.
            label_kept = np.where(pseudo == IGNORE_INDEX, IGNORE_INDEX, label).astype(np.uint8)
            conf_pseudo += confusion_matrix(pseudo, label_kept)

    stats: dict = {
        "images": len(dataset),
        "pixels": pixels,
        "threshold": cfg.threshold,
        "config": dataclasses.asdict(cfg),
        "symmetric": symmetric,
        "thresholds": _per_class(thresholds.numpy()),
        "coverage": float(kept.sum() / max(pixels, 1)),
        "coverage_per_class": _per_class(_ratio(kept, predicted)),
        "class_fraction": _per_class(_ratio(kept, np.full(NUM_CLASSES, kept.sum()))),
        "mean_conf": sum_conf / max(pixels, 1),
        "mean_consis": sum_consis / consis_pixels if consis_pixels else float("nan"),
        "agreement": agree_pixels / pixels if symmetric and pixels else float("nan"),
    }
    if labelled_dataset is not None:
        tp = np.diag(conf_pseudo)
        stats["diag_pseudo_precision_per_class"] = _per_class(_ratio(tp, conf_pseudo.sum(axis=0)))
        stats["diag_pseudo_accuracy"] = (
            float(tp.sum() / conf_pseudo.sum()) if conf_pseudo.sum() else float("nan")
        )
        scores = scores_from_confusion(conf_pred)
        stats["diag_pred_miou"] = scores.miou
        stats["diag_pred_iou_per_class"] = scores.per_class
    write_json(out_root / STATS_FILE, stats)
    if figure_images > 0:
        rows = list(range(min(figure_images, len(dataset))))
        save_pseudo_label_figure(
            prob_fn, dataset, cfg, thresholds, out_root / FIGURE_FILE, rows, labelled_dataset
        )
    return stats


@torch.no_grad()
def save_pseudo_label_figure(
    prob_fn: PairProbabilityFn,
    dataset: SegmentationDataset,
    cfg: PseudoConfig,
    thresholds: torch.Tensor,
    path: Path,
    indices: Sequence[int] = (0, 1, 2, 3),
    labelled_dataset: SegmentationDataset | None = None,
    height: int = 128,
) -> Path:
    """PNG with one row per image in `indices`, each panel `height` pixels tall:
    image | argmax P_T | argmax P_S | M_conf (greyscale) | pseudo label | ground truth.

    Label maps use the Cityscapes palette (ignored pixels black); the P_S panel is grey without the
    symmetric path, the ground-truth panel grey without labelled_dataset (a diagnostic view only).
    thresholds: (C,) as used for the pseudo labels. Returns `path` (written atomically).
    """
    titles = ("image", "argmax P_T", "argmax P_S", "M_conf", "pseudo label", "ground truth")
    rows = []
    for maps in iter_pixel_maps(prob_fn, dataset, cfg, indices, batch_size=len(indices) or 1):
        with Image.open(dataset.samples[maps.index].image) as im:
            image = np.asarray(im.convert("RGB"))
        grey = np.full(maps.pred.shape, 128, dtype=np.uint8)
        pseudo = select(maps.pred[None], maps.m_conf[None], thresholds)[0].cpu().numpy()
        truth = _true_label(labelled_dataset, dataset, maps.index) if labelled_dataset is not None else None
        panels = [
            panel(image, height, nearest=False),
            panel(colorize(maps.pred_t.cpu().numpy()), height, True),
            panel(colorize(maps.pred_s.cpu().numpy()) if maps.pred_s is not None else grey, height, True),
            panel((maps.m_conf.cpu() * 255).round().clamp(0, 255).to(torch.uint8).numpy(), height, False),
            panel(colorize(pseudo), height, True),
            panel(colorize(truth) if truth is not None else grey, height, True),
        ]
        rows.append(panels)
    return save_panel_grid(titles, rows, path)
