"""Paired image/label transforms: resize, random crop, flip, normalisation.

Images are resized bicubically and labels with nearest neighbour (a label is a class id, not a
quantity). Randomness comes from an explicit numpy Generator so that a sample's augmentation is a
function of (seed, step), which makes CPU runs repeatable and resumable.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# DeepLab's COCO-initialised (Caffe) weights expect BGR, 0-255, minus this mean (in BGR order).
CAFFE_BGR_MEAN = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float32)


def resize_pair(
    image: Image.Image, label: np.ndarray | None, size: tuple[int, int]
) -> tuple[Image.Image, np.ndarray | None]:
    """Resize to size=(height, width): bicubic for the image, nearest for the (H, W) label."""
    h, w = size
    if image.size != (w, h):
        image = image.resize((w, h), Image.BICUBIC)
    if label is not None and label.shape != (h, w):
        label = np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))
    return image, label


def random_crop(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop (H, W, 3) image and (H, W) label to size=(h, w) at one random position."""
    h, w = size
    H, W = image.shape[:2]
    if h > H or w > W:
        raise ValueError(f"crop size {size} is larger than the resized image {(H, W)}")
    top = int(rng.integers(0, H - h + 1))
    left = int(rng.integers(0, W - w + 1))
    image = image[top : top + h, left : left + w]
    if label is not None:
        label = label[top : top + h, left : left + w]
    return image, label


def normalize(image: np.ndarray, mode: str) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 tensor, normalised as `mode` (imagenet | caffe)."""
    x = image.astype(np.float32)
    if mode == "imagenet":
        x = (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    elif mode == "caffe":
        x = x[:, :, ::-1] - CAFFE_BGR_MEAN
    else:
        raise ValueError(f"normalize: unknown mode {mode!r} (imagenet | caffe)")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def denormalize(x: torch.Tensor, mode: str) -> np.ndarray:
    """Inverse of `normalize`: (3, H, W) tensor -> (H, W, 3) uint8 RGB, for pictures."""
    a = x.detach().cpu().float().numpy().transpose(1, 2, 0)
    if mode == "imagenet":
        a = (a * IMAGENET_STD + IMAGENET_MEAN) * 255.0
    else:
        a = (a + CAFFE_BGR_MEAN)[:, :, ::-1]
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def augment(
    image: np.ndarray,
    label: np.ndarray | None,
    crop_size: tuple[int, int] | None,
    flip: bool,
    normalize_mode: str,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random crop and flip (rng=None: neither, the evaluation view), then normalisation.

    (H, W, 3) uint8 image and (H, W) uint8 label, already resized; neither is modified. Returns image
    (3, h, w) float32 and label (h, w) int64 (255 = ignore) or None.
    """
    if rng is not None and crop_size is not None:
        image, label = random_crop(image, label, crop_size, rng)
    if rng is not None and flip and rng.random() < 0.5:
        image = image[:, ::-1]
        label = label[:, ::-1] if label is not None else None
    tensor = normalize(image, normalize_mode)
    label_t = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)) if label is not None else None
    return tensor, label_t


def paired_transform(
    image: Image.Image,
    label: np.ndarray | None,
    size: tuple[int, int],
    crop_size: tuple[int, int] | None,
    flip: bool,
    normalize_mode: str,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Full pipeline for one sample: resize_pair, then augment. rng=None means evaluation: no crop, no flip.

    Returns image (3, h, w) float32 and label (h, w) int64 (255 = ignore) or None.
    """
    image, label = resize_pair(image.convert("RGB"), label, size)
    return augment(np.asarray(image), label, crop_size, flip, normalize_mode, rng)
