"""What a loss term sees of a segmentation step (`Step`) and of where the loop runs (`TermContext`).

The loop (symda.adapt.loop) runs the segmenter on each stream's batch; terms read the outputs, the
labels and the softmax maps from here, so that two terms reading one stream share its forward pass and
its upsampled probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from symda.distributed import Runtime
from symda.models.losses import IGNORE_INDEX, upsampled


def stream_seed(seed: int, stream: int) -> int:
    """A seed for one random stream (a dataset's batches, a term's initial weights), distinct from
    `seed` and from every other stream's."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


@dataclass(frozen=True)
class TermContext:
    """Where a stage's terms build their networks: the loop's runtime, the run's seed, the model's
    output levels ("main", and "aux" with an aux head) of num_classes channels, and the segmenter
    itself on the runtime's device (for a term that keeps a copy of it: the mean teacher)."""

    runtime: Runtime
    seed: int
    num_classes: int
    levels: tuple[str, ...]
    model: torch.nn.Module | None = None

    @contextmanager
    def seeded(self, stream: int) -> Iterator[None]:
        """Inside the block the torch RNG draws from `stream`'s own seed; after it, the RNG is as it
        was: what a term initialises changes no other random number of the run."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.seed, stream))
            yield


class Step:
    """One step's batches ({stream: {"image": (N, 3, H, W), "label": (N, H, W) int64 where labelled}},
    on the host) and the segmenter's outputs on them, which the loop adds stream by stream."""

    def __init__(self, runtime: Runtime, batches: dict[str, dict[str, Any]]) -> None:
        self.runtime = runtime
        self.batches = batches
        self._outputs: dict[str, dict[str, torch.Tensor]] = {}
        self._labels: dict[str, torch.Tensor] = {}
        self._probabilities: dict[tuple[str, str], torch.Tensor] = {}

    def forward(self, model: torch.nn.Module, stream: str) -> None:
        """Run the segmenter on the stream's images (the runtime's device, memory format and autocast)."""
        images = self.runtime.images(self.batches[stream]["image"])
        with self.runtime.autocast():
            self._outputs[stream] = model(images)

    def outputs(self, stream: str) -> dict[str, torch.Tensor]:
        """{level: (N, C, h, w) logits} of the stream's forward pass."""
        return self._outputs[stream]

    def labels(self, stream: str) -> torch.Tensor:
        """The stream's (N, H, W) labels on the device."""
        if stream not in self._labels:
            self._labels[stream] = self.runtime.to(self.batches[stream]["label"])
        return self._labels[stream]

    def labelled(self, stream: str) -> bool:
        """Whether any pixel of the stream's batch is labelled, read on the host batch (asking the
        device would cost a host-device sync every step)."""
        return bool((self.batches[stream]["label"] != IGNORE_INDEX).any())

    def size(self, stream: str) -> tuple[int, int]:
        """(H, W) of the stream's images."""
        return tuple(self.batches[stream]["image"].shape[-2:])

    def probabilities(self, stream: str, level: str) -> torch.Tensor:
        """(N, C, H, W) float32 softmax of the level's logits upsampled to the images' size; computed
        once a step (with the autograd state of its first call)."""
        key = (stream, level)
        if key not in self._probabilities:
            self._probabilities[key] = torch.softmax(
                upsampled(self.outputs(stream)[level], self.size(stream)), dim=1
            )
        return self._probabilities[key]

    def images_seen(self) -> int:
        """Images the segmenter saw in this step (every stream's batch)."""
        return sum(len(batch["image"]) for batch in self.batches.values())
