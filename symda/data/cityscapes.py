"""Cityscapes: `leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png` and
`gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png` (8-bit labelIds).

A root is what cityscapesscripts calls CITYSCAPES_DATASET (`data.target_root: $CITYSCAPES_DATASET`
works: roots expand environment variables): the folder holding `leftImg8bit/` and `gtFine/`, or
holding the official downloads unpacked each into its own folder (`leftImg8bit_trainvaltest/
leftImg8bit/`, `gtFine_trainvaltest/gtFine/`). The test split's labels are not public (its gtFine
files are placeholders): it is read without labels, and evaluating on it is refused.

The target train split is loaded without labels for adaptation (`with_labels=False`): target labels
only ever reach evaluation and diagnostics that say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from symda.data.dataset import DatasetError, Sample
from symda.data.labels import LABEL_ID_TO_TRAIN_ID
from symda.data.split_list import read_split_list

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


UNLABELLED_SPLITS = ("test",)


def _folder(root: Path, name: str) -> Path:
    """root/name, or root/name_trainvaltest/name (each official download unpacked into its own
    folder); root/name when neither exists (e.g. a layout about to be written)."""
    for candidate in (Path(root) / name, Path(root) / f"{name}_trainvaltest" / name):
        if candidate.is_dir():
            return candidate
    return Path(root) / name


def image_dir(root: Path) -> Path:
    """The `leftImg8bit` folder of a Cityscapes root."""
    return _folder(root, "leftImg8bit")


def label_dir(root: Path) -> Path:
    """The `gtFine` folder of a Cityscapes root."""
    return _folder(root, "gtFine")


def label_path_for(root: Path, split: str, name: str) -> Path:
    """gtFine labelIds path of the image `name` ('city/city_seq_frame_leftImg8bit.png')."""
    return label_dir(root) / split / name.replace(IMAGE_SUFFIX, LABEL_SUFFIX)


def list_cityscapes(
    root: Path, split: str, list_file: str | Path | None = None, with_labels: bool = True
) -> list[Sample]:
    """Samples of one split; names are 'city/file_leftImg8bit.png', as in the field's split lists.
    The test split comes without labels whatever `with_labels` (its labels are not public)."""
    root = Path(root)
    split_dir = image_dir(root) / split
    if not split_dir.is_dir():
        raise DatasetError(
            f"{root}: not a Cityscapes root with a '{split}' split (expected the folder {root / 'leftImg8bit' / split} "
            f"or {root / 'leftImg8bit_trainvaltest' / 'leftImg8bit' / split})"
        )
    with_labels = with_labels and split not in UNLABELLED_SPLITS
    if list_file:
        names = read_split_list(list_file)
    else:
        names = sorted(str(p.relative_to(split_dir)) for p in split_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    labels = label_dir(root) / split  # looked up once, not per image
    return [
        Sample(split_dir / name, labels / name.replace(IMAGE_SUFFIX, LABEL_SUFFIX) if with_labels else None, name)
        for name in names
    ]


def read_label_ids(path: Path) -> np.ndarray:
    """(H, W) uint8 labelIds of a gtFine_labelIds PNG."""
    try:
        img = Image.open(path)
        if img.mode not in ("L", "P"):
            raise DatasetError(f"{path}: expected an 8-bit labelIds PNG (mode L), got mode {img.mode}")
        return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: unreadable label file ({err})") from err


def decode_label(path: Path) -> np.ndarray:
    """(H, W) uint8 trainIds (255 = ignore) of a gtFine_labelIds file."""
    return LABEL_ID_TO_TRAIN_ID[read_label_ids(path)]
