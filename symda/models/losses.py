"""Losses on a segmentation network's outputs: cross-entropy of the main and auxiliary logits.

The networks' outputs are {"main": (N, C, h, w) logits, "aux": ... when the model has an aux head}
at 1/8 (or 1/16) of the input size; labels are (N, H, W) int64 at the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUX_LOSS_WEIGHT = 0.1  # AdaptSegNet's weight of the auxiliary (layer3) segmentation loss
IGNORE_INDEX = 255  # unlabelled pixels (symda.data.labels.IGNORE_INDEX: Cityscapes' convention)


def upsampled(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) logits -> float32 (N, C, H, W), bilinear (the field's upsampling of outputs)."""
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)


def segmentation_loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main (and AUX_LOSS_WEIGHT x auxiliary) logits, upsampled to the (N, H, W) labels."""
    size = labels.shape[-2:]
    loss = F.cross_entropy(upsampled(outputs["main"], size), labels, ignore_index=IGNORE_INDEX)
    if "aux" in outputs:
        aux = F.cross_entropy(upsampled(outputs["aux"], size), labels, ignore_index=IGNORE_INDEX)
        loss = loss + AUX_LOSS_WEIGHT * aux
    return loss


def pseudo_label_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, labelled: bool | None = None
) -> torch.Tensor:
    """`segmentation_loss` on (N, H, W) pseudo labels; 0 (with a graph) when every pixel is ignored.

    Why: thresholded pseudo labels can leave a whole crop at 255, where cross-entropy's mean over zero
    pixels is NaN; such a batch simply carries no pseudo-label signal. `labelled`: whether any pixel
    is labelled, when the caller knows it (read off the batch before it goes to the GPU: asking the
    device would cost a host-device sync every step).
    """
    if labelled is None:
        labelled = bool((labels != IGNORE_INDEX).any())
    if not labelled:
        return outputs["main"].sum() * 0.0
    return segmentation_loss(outputs, labels)
