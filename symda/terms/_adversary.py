"""Output-level adversarial training, shared by the adversarial terms (AdaptSegNet's, AdvEnt's).

One fully convolutional discriminator per output level ("main", and "aux" with the model's aux head)
with its own Adam optimiser. Per step, AdaptSegNet's two updates: the segmenter's loss for making
each discriminator call its target maps "source" (`generator_loss`, the discriminators frozen), then
the discriminators' own step on the detached source and target maps (`update`). What the maps are is
the term's: softmax outputs (AdaptSegNet) or their weighted self-information (AdvEnt). Maps are the
outputs upsampled to the input images' size, as AdaptSegNet does: the 1/8-size outputs are too small
for five stride-2 convs at the crop sizes used here, and upsampling keeps D's receptive field in
image pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from symda.models.discriminator import OutputDiscriminator, d_decisions_correct, gan_loss

if TYPE_CHECKING:
    from symda.adapt.step import TermContext
    from symda.terms.base import Losses


@contextmanager
def frozen(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Parameters of `modules` do not require grad inside the block (and are restored after it).

    Autograd records requires_grad when an op runs, so a loss computed inside the block never puts
    gradients into these parameters, even when it is backpropagated after the block has ended.
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def level_weights(levels: tuple[str, ...], lambda_main: float, lambda_aux: float) -> dict[str, float]:
    """{level: weight} of the discriminators to build: "main", and "aux" when the model has an aux
    head and lambda_aux > 0."""
    weights = {"main": lambda_main}
    if "aux" in levels and lambda_aux > 0:
        weights["aux"] = lambda_aux
    return weights


class Adversary:
    """The discriminators of one adversarial term and their updates (see the module docstring).

    weights: {level: lambda}; config: the term's section (gan_loss, d_lr, d_beta1, d_beta2,
    d_channels); init_stream: the random stream their initial weights come from (TermContext.seeded),
    so building them leaves every other random number of the run as it was. Metric names carry
    `suffix` (AdvEnt's "_ent") after loss_adv, loss_d and d_acc, and "_<level>" for levels but main.
    """

    def __init__(self, weights: dict[str, float], config: Any, ctx: TermContext, init_stream: int,
                 suffix: str = "") -> None:  # fmt: skip
        self.weights, self.kind, self.suffix, self.runtime = weights, config.gan_loss, suffix, ctx.runtime
        self.discs: dict[str, OutputDiscriminator] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        with ctx.seeded(init_stream):
            for level in weights:
                d = OutputDiscriminator(ctx.num_classes, config.d_channels)
                opt = torch.optim.Adam(d.parameters(), lr=config.d_lr, betas=(config.d_beta1, config.d_beta2))
                for g in opt.param_groups:
                    g["initial_lr"] = g["lr"]  # the loop's poly decay starts here, as the segmenter's
                self.discs[level], self.opts[level] = d.train(), opt
        self.discs = {level: ctx.runtime.module(d) for level, d in self.discs.items()}

    def name(self, metric: str, level: str) -> str:
        return f"{metric}{self.suffix}" + ("" if level == "main" else f"_{level}")

    def generator_loss(self, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        """(sum of lambda_level x the GAN loss of D_level calling the (N, C, H, W) target maps "source",
        the unweighted losses): gradients reach the segmenter through the maps, never D."""
        with self.runtime.autocast(), frozen(self.discs.values()):
            adv = {
                lv: gan_loss(d(target[lv]), is_source=True, kind=self.kind) for lv, d in self.discs.items()
            }
        adv = {lv: v.float() for lv, v in adv.items()}
        weighted = sum(self.weights[lv] * adv[lv] for lv in self.discs)
        return weighted, {self.name("loss_adv", lv): v.detach() for lv, v in adv.items()}

    def update(self, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> Losses:
        """One step of each discriminator on the detached maps: source -> 1, target -> 0, loss
        (source + target) / 2 as AdaptSegNet. Returns loss_d per level and d_acc, the share of the
        main discriminator's patch decisions that were right on this batch (before its step)."""
        metrics: Losses = {}
        for level, d in self.discs.items():
            with self.runtime.autocast():
                out_s = d(source[level].detach())
                out_t = d(target[level].detach())
            loss = 0.5 * (
                gan_loss(out_s.float(), True, self.kind) + gan_loss(out_t.float(), False, self.kind)
            )
            self.opts[level].zero_grad(set_to_none=True)
            loss.backward()
            self.runtime.average_gradients(d)
            self.opts[level].step()
            metrics[self.name("loss_d", level)] = loss.detach()
            if level == "main":
                correct = torch.cat([d_decisions_correct(out_s, True, self.kind).flatten(),
                                     d_decisions_correct(out_t, False, self.kind).flatten()])  # fmt: skip
                metrics[self.name("d_acc", level)] = correct.float().mean()
        return metrics

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return list(self.opts.values())

    def state_dict(self) -> dict[str, Any]:
        return {"discriminators": {lv: d.state_dict() for lv, d in self.discs.items()},
                "optimizers": {lv: o.state_dict() for lv, o in self.opts.items()}}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], where: str) -> None:
        held = sorted(state.get("discriminators", {}))
        if held != sorted(self.discs):
            raise ValueError(f"{where}: holds discriminators {held} but this run has {sorted(self.discs)}; "
                                  "resume it with the config that wrote it")  # fmt: skip
        for level in self.discs:
            self.discs[level].load_state_dict(state["discriminators"][level])
            self.opts[level].load_state_dict(state["optimizers"][level])
