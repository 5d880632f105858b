"""GTA5 (Playing for Data): `images/00001.png ...` and `labels/` with the same names.

Labels are palettised PNGs whose pixel values are Cityscapes labelIds. They are read with PIL as
indices (`np.asarray(Image.open(p))`): converting to RGB, or reading with cv2, gives colours or
wrong values instead of ids.

GTA5 is published as 24,966 frames, but the download holds 24,941 image/label pairs: the 25 ids of
KNOWN_MISSING_IDS are absent (reported in bupt-ai-cz/IAST-ECCV2020 issue #2; that paper, like others,
trains on the 24,941). A listing skips a known-missing frame whose files are absent, so a split list
of all 24,966 names trains without flags, and `check-data` names the frames it skipped as known; any
other missing or damaged pair still stops training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from symda.data.dataset import DatasetError, Sample
from symda.data.labels import LABEL_ID_TO_TRAIN_ID
from symda.data.split_list import read_split_list


KNOWN_MISSING_IDS: frozenset[int] = frozenset(
    [*range(2154, 2159), *range(4634, 4638), *range(7115, 7120), *range(9683, 9689), *range(12050, 12055)]
)
PUBLISHED_FRAMES = 24966


def frame_id(name: str) -> int | None:
    """The frame number of a GTA5 file name ('02154.png' -> 2154), None for any other name."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def known_missing(root: Path, names: list[str], with_labels: bool = True) -> list[str]:
    """The names among `names` that are known-missing GTA5 frames whose image (or label) is absent."""
    root = Path(root)
    return [
        n for n in names
        if frame_id(n) in KNOWN_MISSING_IDS
        and (not (root / "images" / n).is_file() or (with_labels and not (root / "labels" / n).is_file()))
    ]  # fmt: skip


def list_gta5(root: Path, list_file: str | Path | None = None, with_labels: bool = True) -> list[Sample]:
    """Samples of a GTA5-layout root; `list_file` names the images to use (one file name per line).

    Known-missing frames (KNOWN_MISSING_IDS) whose files are absent are left out; `known_missing`
    names them."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise DatasetError(f"{root}: not a GTA5 root (expected the folder {images_dir})")
    names = read_split_list(list_file) if list_file else sorted(p.name for p in images_dir.glob("*.png"))
    skipped = set(known_missing(root, names, with_labels))
    labels_dir = root / "labels"
    return [
        Sample(images_dir / name, (labels_dir / name) if with_labels else None, name)
        for name in names
        if name not in skipped
    ]


def skipped_known_frames(root: Path, list_file: str | Path | None = None, with_labels: bool = True) -> list[str]:
    """The known-missing frames `list_gta5` leaves out of this root's listing: those of a split list
    whose files are absent, or without a list the known-missing ids below the highest frame present
    (a SynthCity of 600 frames in GTA5's layout expects none of them)."""
    root = Path(root)
    if list_file:
        names = read_split_list(list_file)
    else:
        top = max((i for p in (root / "images").glob("*.png") if (i := frame_id(p.name)) is not None), default=0)
        names = [f"{i:05d}.png" for i in sorted(KNOWN_MISSING_IDS) if i < top]
    return known_missing(root, names, with_labels)


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
