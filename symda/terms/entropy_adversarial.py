"""AdvEnt: adversarial entropy minimisation (Vu et al., ADVENT, CVPR 2019): `adapt.entropy_adversarial`.

Instead of each pixel's entropy, its weighted self-information map (-p log2 p / log2 C per class,
ADVENT's `prob_2_entropy`) is aligned between domains: a discriminator per output level learns to
tell source maps from target ones and the segmenter is pushed to fool it on target images, so target
predictions become as confident as source ones where source ones are, not everywhere. The
discriminators and their updates are AdaptSegNet's (symda.terms.adversarial); only what they see differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from symda.terms.adversarial import AdversarialConfig, OutputAdversarial
from symda.terms.base import register, stream_id
from symda.terms.entropy import self_information

if TYPE_CHECKING:
    import torch


@dataclass
class EntropyAdversarialConfig(AdversarialConfig):
    """Adversarial entropy minimisation: the fields of `adapt.adversarial`. ADVENT's weights are 0.001
    (main) and 0.0002 (aux), its discriminators AdaptSegNet's (Adam 1e-4, betas 0.9 / 0.99, BCE)."""

    lambda_main: float = 0.0  # weight of the main output's adversarial loss; 0 (default) turns the term off


@register
class EntropyAdversarial(OutputAdversarial):
    """lambda_main x GAN loss of the discriminator calling the target self-information maps "source"
    (+ the aux level's); metrics loss_adv_ent(_aux) (unweighted), loss_d_ent(_aux), d_acc_ent."""

    name = "entropy_adversarial"
    Config = EntropyAdversarialConfig
    method = "AdvEnt"
    suffix = "_ent"

    def init_stream(self) -> int:
        return stream_id(self.name)

    def maps(self, probabilities: torch.Tensor) -> torch.Tensor:
        """ADVENT's discriminator input: the weighted self-information of the softmax output."""
        return self_information(probabilities)
