"""The stage's own terms: cross-entropy on labelled source images (every segmentation stage) and on
target images with pseudo labels (a self-training round, weighted by self_train.pseudo_weight).

Main plus 0.1 x auxiliary logits, upsampled to the labels (symda.models.losses); unlabelled pixels
(255) are ignored, and a pseudo-label crop with none labelled adds nothing instead of NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from symda.terms.base import Losses, Term

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step


class SourceCrossEntropy(Term):
    """Supervised cross-entropy on the labelled source batch: loss_seg."""

    stream = "source"

    def loss(self, step: Step) -> tuple[torch.Tensor, Losses]:
        from symda.models.losses import segmentation_loss

        loss = segmentation_loss(step.outputs("source"), step.labels("source"))
        return loss, {"loss_seg": loss.detach()}


class PseudoLabelCrossEntropy(Term):
    """`weight` x cross-entropy on the target images' pseudo labels: loss_pseudo (unweighted)."""

    stream = "pseudo"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def loss(self, step: Step) -> tuple[torch.Tensor, Losses]:
        from symda.models.losses import pseudo_label_loss

        loss = pseudo_label_loss(step.outputs("pseudo"), step.labels("pseudo"), step.labelled("pseudo"))
        return self.weight * loss, {"loss_pseudo": loss.detach()}
