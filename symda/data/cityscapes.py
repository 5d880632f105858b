"""Cityscapes: `leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png` and
`gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png` (8-bit labelIds).

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


def label_path_for(root: Path, split: str, name: str) -> Path:
    """gtFine labelIds path of the image `name` ('city/city_seq_frame_leftImg8bit.png')."""
    return Path(root) / "gtFine" / split / name.replace(IMAGE_SUFFIX, LABEL_SUFFIX)


def list_cityscapes(
    root: Path, split: str, list_file: str | Path | None = None, with_labels: bool = True
) -> list[Sample]:
    """Samples of one split; names are 'city/file_leftImg8bit.png', as in the field's split lists."""
    root = Path(root)
    split_dir = root / "leftImg8bit" / split
    if not split_dir.is_dir():
        raise DatasetError(f"{root}: not a Cityscapes root with a '{split}' split (expected the folder {split_dir})")
    if list_file:
        names = read_split_list(list_file)
    else:
        names = sorted(str(p.relative_to(split_dir)) for p in split_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    return [
        Sample(split_dir / name, label_path_for(root, split, name) if with_labels else None, name)
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
