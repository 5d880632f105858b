"""MinEnt: entropy minimisation on target images (Vu et al., ADVENT, CVPR 2019): `adapt.entropy`.

Target predictions that are confident resemble source ones; minimising their entropy pushes the
segmenter's decision boundaries away from the target's dense regions. ADVENT's loss is the mean over
target pixels of the prediction's entropy normalised by log C (so it lies in [0, 1]), computed on the
softmax of the outputs upsampled to the input size, weighted 0.001 (main) and 0.0002 (aux).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from symda.terms.base import KEY, AdaptationTerm, Losses, non_negative, register

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext

EPSILON = 1e-30  # ADVENT's, inside the log


def self_information(p: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) probabilities -> (N, C, H, W) weighted self-information -p log2(p) / log2(C):
    ADVENT's `prob_2_entropy`; summed over C it is the pixel's entropy normalised to [0, 1]."""
    return -(p * (p + EPSILON).log2()) / math.log2(p.shape[1])


def mean_entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean normalised per-pixel entropy of (N, C, H, W) probabilities: ADVENT's `entropy_loss`."""
    return self_information(p).sum(dim=1).mean()


@dataclass
class EntropyConfig:
    """Entropy minimisation. ADVENT's weights are 0.001 (main) and 0.0002 (aux); off by default."""

    lambda_main: float = 0.0  # weight of the main output's mean target entropy; 0 turns the term off
    lambda_aux: float = 0.0002  # the auxiliary head's (used only with model.aux_head)


@register
class Entropy(AdaptationTerm):
    """lambda_main x mean entropy of the target prediction (+ lambda_aux x the aux head's); metrics
    loss_ent(_aux), unweighted."""

    name = "entropy"
    Config = EntropyConfig
    FIELDS = {"lambda_main": KEY, "lambda_aux": KEY}
    switch = "lambda_main"
    method = "MinEnt"
    stream = "target"

    @classmethod
    def check(cls, config: EntropyConfig) -> list[tuple[str, str]]:
        return non_negative(config, "lambda_main", "lambda_aux")

    def setup(self, ctx: TermContext) -> None:
        self.weights = {"main": self.config.lambda_main}
        if "aux" in ctx.levels and self.config.lambda_aux > 0:
            self.weights["aux"] = self.config.lambda_aux

    def loss(self, step: Step) -> tuple[torch.Tensor, Losses]:
        losses = {level: mean_entropy(step.probabilities("target", level)) for level in self.weights}
        weighted = sum(self.weights[level] * loss for level, loss in losses.items())
        names = {level: "loss_ent" + ("" if level == "main" else f"_{level}") for level in losses}
        return weighted, {names[level]: loss.detach() for level, loss in losses.items()}
