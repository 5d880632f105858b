"""GTA5 (Playing for Data): `images/00001.png ...` and `labels/` with the same names.

Labels are palettised PNGs whose pixel values are Cityscapes labelIds. They are read with PIL as
indices (`np.asarray(Image.open(p))`): converting to RGB, or reading with cv2, gives colours or
wrong values instead of ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from symda.data.dataset import DatasetError, Sample
from symda.data.labels import LABEL_ID_TO_TRAIN_ID
from symda.data.split_list import read_split_list


def list_gta5(root: Path, list_file: str | Path | None = None, with_labels: bool = True) -> list[Sample]:
    """Samples of a GTA5-layout root; `list_file` names the images to use (one file name per line)."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise DatasetError(f"{root}: not a GTA5 root (expected the folder {images_dir})")
    names = read_split_list(list_file) if list_file else sorted(p.name for p in images_dir.glob("*.png"))
    labels_dir = root / "labels"
    return [
        Sample(images_dir / name, (labels_dir / name) if with_labels else None, name) for name in names
    ]


def read_label_ids(path: Path) -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds of a palettised (or greyscale) GTA5 label PNG."""
    try:
        img = Image.open(path)
        if img.mode not in ("P", "L"):
            raise DatasetError(f"{path}: GTA5 labels must be palettised label ids (mode P or L), got mode {img.mode}")
        return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: unreadable label file ({err})") from err


def decode_label(path: Path) -> np.ndarray:
    """(H, W) uint8 trainIds (255 = ignore) of a GTA5 label file."""
    return LABEL_ID_TO_TRAIN_ID[read_label_ids(path)]
