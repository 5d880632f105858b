"""What every training loop shares (the translator's and the segmenter's): the log window, checkpoint
files, and the progress bar.

Losses stay 0-dim tensors on the device through a step (no .item()): a GPU step then never waits for
the host. `LossWindow` turns a whole log interval's losses into floats with one transfer and checks
them, at every log line and before every checkpoint, so no checkpoint ever holds weights a
non-finite loss has touched.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from symda.io import atomic_torch_save

Losses = dict[str, torch.Tensor]  # {name: 0-dim tensor on the device}, one step's (or half-step's)


class LossWindow:
    """The losses of the steps since the last log line, and the images seen in that time.

    `unit` names a step in messages ("step", the translator's "G step").
    """

    def __init__(self, unit: str = "step") -> None:
        self.unit = unit
        self.rows: list[tuple[int, Losses]] = []
        self.images = 0
        self.t0 = time.perf_counter()

    def add(self, step: int, losses: Losses, images: int = 0) -> None:
        """One row of losses of `step` (a step may add several rows, e.g. one per critic update)."""
        self.rows.append((step, losses))
        self.images += images

    def values(self) -> list[dict[str, float]]:
        """Every row's losses as floats (one host-device transfer); FloatingPointError naming the step
        and the loss at the first non-finite one."""
        if not self.rows:
            return []
        flat = torch.stack([v.float() for _, losses in self.rows for v in losses.values()]).tolist()
        out, i = [], 0
        for step, losses in self.rows:
            row = dict(zip(losses, flat[i : i + len(losses)], strict=True))
            i += len(losses)
            for name, value in row.items():
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"non-finite training loss {value} at {self.unit} {step} ({name})"
                    )
            out.append(row)
        return out

    def means(self) -> dict[str, float]:
        """Each loss's mean over the rows that have it, "loss" first when there is one."""
        rows = self.values()
        names = dict.fromkeys(["loss"] * any("loss" in r for r in rows) + [k for r in rows for k in r])
        means = {}
        for name in names:
            values = [r[name] for r in rows if name in r]
            means[name] = sum(values) / len(values)
        return means

    def images_per_s(self) -> float:
        return self.images / max(time.perf_counter() - self.t0, 1e-9)


def save_checkpoint(path: Path, **parts: Any) -> Path:
    """Write a checkpoint (a dict of state dicts, tensors and plain values) atomically to `path`."""
    return atomic_torch_save(parts, path)


def read_checkpoint(path: Path, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    """A checkpoint of `save_checkpoint` (on the CPU); CheckpointError naming the file when it is not
    a readable `what` holding `required`."""
    from symda.checkpoints import read_checkpoint as read

    return read(path, what, required=required)


def progress_bar(total: int, initial: int, desc: str, show: bool) -> tqdm:
    """The loop's tqdm bar (nothing drawn unless `show`: a terminal, on the main rank)."""
    return tqdm(total=total, initial=initial, desc=desc, disable=not show, dynamic_ncols=True)
