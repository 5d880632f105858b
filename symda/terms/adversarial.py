"""AdaptSegNet's output-space adversarial alignment (Tsai et al., CVPR 2018): `adapt.adversarial`.

A discriminator per output level learns to tell the segmenter's softmax output on source images from
its output on target images, and the segmenter is pushed to fool it on target images. Output space is
low dimensional and holds the scene layout both domains share, which is why aligning it works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from symda.terms.base import KEY, AdaptationTerm, Losses, non_negative, one_of, positive, register

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext

GAN_LOSSES = ("bce", "lsgan")


@dataclass
class AdversarialConfig:
    """Output-space adversarial alignment. lambda 0.001 / 0.0002 are AdaptSegNet's BCE weights (LS-GAN
    wants about 10x); the discriminators' Adam settings are AdaptSegNet's."""

    lambda_main: float = 0.001  # weight of the main output's adversarial loss; 0 turns the term off
    lambda_aux: float = 0.0002  # the auxiliary head's (used only with model.aux_head)
    gan_loss: str = "bce"  # bce | lsgan
    d_lr: float = 1e-4  # the discriminators' Adam learning rate (decayed with the segmenter's schedule)
    d_beta1: float = 0.9  # their Adam beta1
    d_beta2: float = 0.99  # their Adam beta2
    d_channels: int = 64  # first conv width of each discriminator (64-128-256-512-1 in the paper)


@register
class OutputAdversarial(AdaptationTerm):
    """lambda_main x GAN loss of the main-output discriminator (+ lambda_aux x the aux one's) calling the
    segmenter's target outputs "source"; metrics loss_adv(_aux) (unweighted), loss_d(_aux), d_acc."""

    name = "adversarial"
    Config = AdversarialConfig
    FIELDS = {"lambda_main": KEY, "lambda_aux": KEY, "gan_loss": KEY, "d_lr": KEY, "d_beta1": KEY,
              "d_beta2": KEY, "d_channels": KEY}  # fmt: skip
    switch = "lambda_main"
    method = "AdaptSegNet"
    stream = "target"
    reads = ("source",)
    suffix = ""  # of its metric names

    @classmethod
    def check(cls, config: AdversarialConfig) -> list[tuple[str, str]]:
        return [*non_negative(config, "lambda_main", "lambda_aux"), *positive(config, "d_lr", "d_channels"),
                *one_of(config, "gan_loss", GAN_LOSSES)]  # fmt: skip

    def setup(self, ctx: TermContext) -> None:
        from symda.terms._adversary import Adversary, level_weights

        weights = level_weights(ctx.levels, self.config.lambda_main, self.config.lambda_aux)
        self.adversary = Adversary(weights, self.config, ctx, self.init_stream(), self.suffix)

    def init_stream(self) -> int:
        """The random stream of the discriminators' initial weights: 3, theirs since symda 0.1."""
        return 3

    def maps(self, probabilities: torch.Tensor) -> torch.Tensor:
        """What the discriminators see of an (N, C, H, W) softmax output: the output itself."""
        return probabilities

    def loss(self, step: Step) -> tuple[torch.Tensor, Losses]:
        return self.adversary.generator_loss(self._maps(step, "target"))

    def update(self, step: Step) -> Losses:
        import torch

        with torch.no_grad():
            source, target = self._maps(step, "source"), self._maps(step, "target")
        return self.adversary.update(source, target)

    def _maps(self, step: Step, stream: str) -> dict[str, torch.Tensor]:
        return {level: self.maps(step.probabilities(stream, level)) for level in self.adversary.weights}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self.adversary.optimizers()

    def state_dict(self) -> dict:
        return self.adversary.state_dict()

    def load_state_dict(self, state: dict, where: str) -> None:
        self.adversary.load_state_dict(state, where)
