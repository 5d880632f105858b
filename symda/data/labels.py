"""The 19 Cityscapes train classes, their colours and the labelId -> trainId map.

Everything is derived from `cityscapesscripts.helpers.labels`, the official table, so a class name,
colour or id is never retyped here. Ignored pixels carry IGNORE_INDEX (255) in every label map of
this project, as in the field's code bases.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

IGNORE_INDEX = 255

# Official labels that count for training, ordered by trainId (0..18).
_TRAIN_LABELS = sorted(
    (lab for lab in _CITYSCAPES_LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda lab: lab.trainId
)

NUM_CLASSES: int = len(_TRAIN_LABELS)
CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in _TRAIN_LABELS)
TRAIN_ID_TO_LABEL_ID: np.ndarray = np.array([lab.id for lab in _TRAIN_LABELS], dtype=np.uint8)
"""(19,) uint8: the Cityscapes labelId of each trainId."""

PALETTE: np.ndarray = np.array([lab.color for lab in _TRAIN_LABELS], dtype=np.uint8)
"""(19, 3) uint8: the official colour of each trainId."""

LABEL_ID_TO_TRAIN_ID: np.ndarray = np.full(256, IGNORE_INDEX, dtype=np.uint8)
"""(256,) uint8 lookup table: labelId -> trainId, 255 for every id that is not trained on."""
for _lab in _CITYSCAPES_LABELS:
    if 0 <= _lab.id < 256 and 0 <= _lab.trainId < IGNORE_INDEX:
        LABEL_ID_TO_TRAIN_ID[_lab.id] = _lab.trainId

KNOWN_LABEL_IDS: frozenset[int] = frozenset(lab.id for lab in _CITYSCAPES_LABELS if lab.id >= 0)
"""Every labelId the official table defines (0..33); other values in a label file are an error."""

LABEL_ID_PALETTE: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
"""(256, 3) uint8: official colour of each labelId, for palettised (GTA5-style) label PNGs."""
for _lab in _CITYSCAPES_LABELS:
    if 0 <= _lab.id < 256:
        LABEL_ID_PALETTE[_lab.id] = _lab.color

# SYNTHIA-RAND-CITYSCAPES: class id in the first channel of GT/LABELS -> Cityscapes trainId.
SYNTHIA_ID_TO_TRAIN_ID: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8,
    16: 9, 1: 10, 10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}  # fmt: skip

# The field's SYNTHIA protocols: 16 classes (no terrain, truck, train) and 13 (also no wall, fence, pole).
SYNTHIA_16_TRAIN_IDS: tuple[int, ...] = tuple(i for i in range(NUM_CLASSES) if i not in (9, 14, 16))
SYNTHIA_13_TRAIN_IDS: tuple[int, ...] = tuple(i for i in SYNTHIA_16_TRAIN_IDS if i not in (3, 4, 5))


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a (H, W) uint8 labelId map to a (H, W) uint8 trainId map (255 = ignore)."""
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a (H, W) trainId map to Cityscapes labelIds; ignored pixels become 0 ('unlabeled')."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    return lut[train_ids.astype(np.uint8)]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) trainIds -> (H, W, 3) uint8 RGB in the official palette; ignored pixels are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[train_ids.astype(np.uint8)]
