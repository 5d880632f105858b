"""Figures of labelled rows of panels (pseudo labels, predictions): PIL only, no plotting library."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from symda.io import atomic_write_bytes

TITLE_HEIGHT = 14
GAP = 2


def panel(array: np.ndarray, height: int, nearest: bool) -> Image.Image:
    """(H, W) or (H, W, 3) uint8 -> PIL image scaled to `height` (nearest for label maps)."""
    img = Image.fromarray(array)
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.NEAREST if nearest else Image.BILINEAR)


def save_panel_grid(titles: Sequence[str], rows: Sequence[Sequence[Image.Image]], path: Path) -> Path:
    """One row per entry of `rows` (panels of equal height, one per title), the titles above the
    columns, on white; written atomically as a PNG at `path`."""
    if not rows:
        raise ValueError(f"{path}: no rows to draw")
    height = rows[0][0].height
    col_w = [max(r[c].width for r in rows) for c in range(len(titles))]
    canvas = Image.new(
        "RGB",
        (sum(col_w) + GAP * (len(col_w) - 1), TITLE_HEIGHT + len(rows) * (height + GAP)),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    x = 0
    for c, title in enumerate(titles):
        draw.text((x + 2, 1), title, fill=(0, 0, 0))
        for r, panels in enumerate(rows):
            canvas.paste(panels[c].convert("RGB"), (x, TITLE_HEIGHT + r * (height + GAP)))
        x += col_w[c] + GAP
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return atomic_write_bytes(Path(path), buf.getvalue())
