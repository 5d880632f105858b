"""Split-list files as the field's repositories ship them: one image path per line."""

from __future__ import annotations

from pathlib import Path

from symda.data.dataset import DatasetError


def read_split_list(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a split-list file; '#' starts a comment."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: split-list file not found")
    names = [line.split("#", 1)[0].strip() for line in p.read_text().splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DatasetError(f"{p}: split-list file names no images")
    return names
