"""AdaptSegNet's output-space discriminator (Tsai et al., CVPR 2018) and its GAN losses.

The discriminator sees a segmentation network's softmax output, not its features: output space is low
dimensional and holds the scene layout that source and target share, which is why aligning it works
(AdaptSegNet). Submodule names (`conv1`..`conv4`, `classifier`) follow the published
`FCDiscriminator`, so its checkpoints map onto this class by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MIN_DISCRIMINATOR_SIZE", "OutputDiscriminator", "d_decisions_correct", "gan_loss"]

# Five 4x4 stride-2 convs with padding 1 each map a size s to floor(s / 2); below 2^5 the last one
# would produce an empty map.
MIN_DISCRIMINATOR_SIZE = 32


class OutputDiscriminator(nn.Module):
    """Fully convolutional domain classifier on (N, num_classes, h, w) softmax probabilities.

    Five 4x4 stride-2 convs (channels, 2x, 4x, 8x, 1), padding 1, LeakyReLU 0.2 between them and no
    normalisation, as AdaptSegNet. Output: (N, 1, h // 32, w // 32) logits, one per patch; high means
    "source". Inputs must be at least MIN_DISCRIMINATOR_SIZE (32) pixels on each side.
    """

    def __init__(self, num_classes: int = 19, channels: int = 64) -> None:
        super().__init__()
        widths = [num_classes, channels, channels * 2, channels * 4, channels * 8]
        for i in range(4):
            setattr(
                self, f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], kernel_size=4, stride=2, padding=1)
            )
        self.classifier = nn.Conv2d(widths[4], 1, kernel_size=4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, num_classes, h, w) probabilities, h, w >= 32 -> (N, 1, h // 32, w // 32) logits."""
        h, w = x.shape[-2:]
        if min(h, w) < MIN_DISCRIMINATOR_SIZE:
            raise ValueError(
                f"OutputDiscriminator needs inputs of at least {MIN_DISCRIMINATOR_SIZE}x{MIN_DISCRIMINATOR_SIZE} "
                f"(five stride-2 convs), got {h}x{w}; use larger crops or upsample the outputs"
            )
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.leaky_relu(conv(x))
        return self.classifier(x)


def gan_loss(logits: Tensor, is_source: bool, kind: str = "bce") -> Tensor:
    """Mean loss of discriminator outputs (N, 1, h', w') against the label source (1) or target (0).

    kind "bce": binary cross-entropy with logits (AdaptSegNet); "lsgan": least squares on the raw
    outputs, (x - 1)^2 or x^2 (AdaptSegNet's LS-GAN variant). Returns a scalar tensor.
    """
    target = torch.full_like(logits, 1.0 if is_source else 0.0)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"gan_loss kind must be 'bce' or 'lsgan', got {kind!r}")


def d_decisions_correct(logits: Tensor, is_source: bool, kind: str = "bce") -> Tensor:
    """(N, 1, h', w') bool: where the discriminator's decision (source vs target) is right.

    The decision boundary is logit 0 for "bce" and output 0.5 for "lsgan" (halfway between its 0/1 targets).
    """
    says_source = logits > (0.0 if kind == "bce" else 0.5)
    return says_source if is_source else ~says_source
