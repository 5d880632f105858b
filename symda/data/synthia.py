"""SYNTHIA-RAND-CITYSCAPES: `RGB/0000000.png` and `GT/LABELS/0000000.png`.

Labels are 16-bit multi-channel PNGs whose class id is in the first channel. PIL reduces 16-bit
colour PNGs to 8 bits (losing the ids), so they are read with pypng, which keeps every bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png

from symda.data.dataset import DatasetError, Sample
from symda.data.labels import IGNORE_INDEX, SYNTHIA_ID_TO_TRAIN_ID
from symda.data.split_list import read_split_list

SYNTHIA_ID_TO_TRAIN_ID_LUT = np.full(65536, IGNORE_INDEX, dtype=np.uint8)
for _sid, _tid in SYNTHIA_ID_TO_TRAIN_ID.items():
    SYNTHIA_ID_TO_TRAIN_ID_LUT[_sid] = _tid
KNOWN_SYNTHIA_IDS = frozenset(range(23))  # 0 = void, 1..22 = SYNTHIA's classes


def list_synthia(root: Path, list_file: str | Path | None = None, with_labels: bool = True) -> list[Sample]:
    root = Path(root)
    rgb = root / "RGB"
    if not rgb.is_dir():
        raise DatasetError(f"{root}: not a SYNTHIA-RAND-CITYSCAPES root (expected the folder {rgb})")
    names = read_split_list(list_file) if list_file else sorted(p.name for p in rgb.glob("*.png"))
    labels = root / "GT" / "LABELS"
    return [Sample(rgb / n, (labels / n) if with_labels else None, n) for n in names]


def read_label_ids(path: Path) -> np.ndarray:
    """(H, W) int32 SYNTHIA class ids: the first channel of the 16-bit label PNG."""
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        planes = info["planes"]
        arr = np.vstack([np.asarray(r, dtype=np.int32) for r in rows]).reshape(height, width, planes)
    except (OSError, png.Error) as err:
        raise DatasetError(f"{path}: unreadable SYNTHIA label file ({err})") from err
    return arr[:, :, 0]


def decode_label(path: Path) -> np.ndarray:
    """(H, W) uint8 Cityscapes trainIds (255 = ignore) of a SYNTHIA label file."""
    return SYNTHIA_ID_TO_TRAIN_ID_LUT[read_label_ids(path)]
