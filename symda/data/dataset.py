"""One dataset class for every source: a list of (image, label) files plus a label decoder.

Each real dataset module (gta5, cityscapes, synthia) only knows its folder layout and how its label
files encode classes; reading, transforming and batching are shared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from symda.data.transforms import augment, resize_pair


@dataclass(frozen=True)
class Sample:
    """One image and, where the split has labels, its label file. `name` is the image's relative path."""

    image: Path
    label: Path | None
    name: str


class DatasetError(RuntimeError):
    """A dataset that cannot be used as configured; the message names the root or file at fault."""


LabelDecoder = Callable[[Path], np.ndarray]
"""Reads a label file and returns (H, W) uint8 trainIds (255 = ignore)."""


class SegmentationDataset(torch.utils.data.Dataset):
    """Images (and optionally labels) of one split, transformed for training or evaluation.

    Items are dicts: "image" (3, h, w) float32, "label" (h, w) int64 when `with_labels`, "name" str,
    "index" int; the evaluation view adds "full_size" (H, W) and "full_label" (H, W) uint8, the
    untransformed label. Index with an int for the deterministic evaluation view, or with (index, seed) to
    draw this sample's random crop/flip from `seed` (what `ResumableBatchSampler` yields).

    `cache_mb` > 0: when the whole split, decoded and resized, fits in that many MB (judged from its
    first sample), every sample is decoded and resized once and kept in memory; crop, flip and
    normalisation still run per item. Items are the same bit for bit with and without the cache.
    Why: at SynthCity's sizes decoding a PNG and resizing it costs about as much as a tenth of a
    training step, and every stage reads each image many times (epochs, evaluations).
    """

    def __init__(
        self,
        samples: list[Sample],
        decode_label: LabelDecoder | None,
        size: tuple[int, int],
        crop_size: tuple[int, int] | None = None,
        flip: bool = False,
        normalize: str = "imagenet",
        with_labels: bool = True,
        root: Path | None = None,
        cache_mb: float = 0,
    ) -> None:
        if not samples:
            raise DatasetError(f"{root or 'dataset'}: no images found")
        if with_labels and any(s.label is None for s in samples):
            raise DatasetError(f"{root or 'dataset'}: labels were requested but some samples have none")
        self.samples = samples
        self.decode_label = decode_label
        self.size = size
        self.crop_size = crop_size
        self.flip = flip
        self.normalize = normalize
        self.with_labels = with_labels
        self.root = root
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, tuple] | None = {} if self.cache_bytes > 0 else None

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[Image.Image, np.ndarray | None]:
        """The untransformed image and (H, W) uint8 trainId label (None without labels)."""
        sample = self.samples[index]
        try:
            image = Image.open(sample.image)
            image.load()
        except (OSError, SyntaxError) as err:
            raise DatasetError(f"{sample.image}: unreadable image ({err})") from err
        label = None
        if self.with_labels:
            label = self.decode_label(sample.label)
            if label.shape != (image.height, image.width):
                raise DatasetError(
                    f"{sample.label}: label is {label.shape[1]}x{label.shape[0]} but its image "
                    f"{sample.image} is {image.width}x{image.height}"
                )
        return image, label

    def prepared(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int], np.ndarray | None]:
        """(image resized to `size`, (H, W, 3) uint8; its label resized, (h, w) uint8 or None; the
        original (H, W); the original label or None): what both views start from. Never modified by
        the caller, so it can be kept in the cache."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image, label = self.read(index)
        resized, small = resize_pair(image.convert("RGB"), label, self.size)
        entry = (np.asarray(resized), small, (image.height, image.width), label)
        if self._cache is not None:
            if not self._cache:  # the first sample decides whether the whole split fits
                arrays = {id(a): a.nbytes for a in (entry[0], entry[1], entry[3]) if a is not None}
                if sum(arrays.values()) * len(self) > self.cache_bytes:
                    self._cache = None
                    return entry
            self._cache[index] = entry
        return entry

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = (key, None) if isinstance(key, int) else key
        image, label, full_size, full_label = self.prepared(index)
        rng = np.random.default_rng(seed) if seed is not None else None
        x, y = augment(image, label, self.crop_size, self.flip, self.normalize, rng)
        item = {"image": x, "name": self.samples[index].name, "index": index}
        if y is not None:
            item["label"] = y
        if seed is None:  # evaluation view: scores are computed at the original label resolution
            item["full_size"] = full_size
            if full_label is not None:
                item["full_label"] = full_label
        return item


class PairedDataset(torch.utils.data.Dataset):
    """The items of `primary` with "partner_image": the same sample of `partner` (another style of the
    same images, e.g. T and T' = G(T, source)), under the same crop and flip (both draw them from the
    item's seed, and both are resized to one size). Raises DatasetError when the two do not list the
    same images in the same order."""

    def __init__(self, primary: SegmentationDataset, partner: SegmentationDataset) -> None:
        names, partner_names = [s.name for s in primary.samples], [s.name for s in partner.samples]
        if names != partner_names:
            missing = sorted(set(names) ^ set(partner_names))[:3]
            raise DatasetError(f"{partner.root}: does not hold the images of {primary.root} one for one "
                               f"({len(partner_names)} against {len(names)}; e.g. {missing})")  # fmt: skip
        if primary.size != partner.size:
            raise DatasetError(f"{partner.root}: resized to {partner.size}, {primary.root} to {primary.size}")
        self.primary, self.partner = primary, partner

    def __len__(self) -> int:
        return len(self.primary)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        return {**self.primary[key], "partner_image": self.partner[key]["image"]}


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Yields `steps` batches of (index, augmentation seed) pairs, starting at `start_step` (this
    rank's share of each global batch of `batch_size` when world_size > 1).

    The order is a fresh permutation per epoch drawn from (seed, epoch), so batch k is the same
    whether a run went straight through or was resumed at step k: resuming needs no sampler state.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, steps: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps, self.start_step = steps, start_step
        # Distributed: rank r takes items r, r + world_size, ... of each global batch, so the ranks
        # together see exactly the batches of a single process.
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def batch(self, step: int) -> list[tuple[int, int]]:
        first = step * self.batch_size
        out = []
        for k in range(first, first + self.batch_size):
            epoch, pos = divmod(k, self.n)
            perm = self._permutation(epoch)
            out.append((int(perm[pos]), int(np.random.SeedSequence([self.seed, k]).generate_state(1)[0])))
        return out

    def _permutation(self, epoch: int) -> np.ndarray:
        if getattr(self, "_cached_epoch", None) != epoch:
            self._cached_epoch = epoch
            self._cached_perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._cached_perm

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            yield self.batch(step)[self.rank :: self.world_size]
