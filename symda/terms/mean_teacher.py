"""Online self-training with a mean teacher (DACS, Tranheden et al., WACV 2021; the form DAFormer,
Hoyer et al., CVPR 2022, trains with): `adapt.mean_teacher`.

A teacher, whose weights are the exponential moving average of the segmenter's, labels every target
batch; the segmenter learns those labels on a ClassMix of the batch (half the classes of a source
image, its pixels and labels, pasted onto a target image). The target pixels' loss is weighted by the fraction
of the batch's pixels the teacher is at least `threshold` confident about (DACS's quality weight).
Where the offline rounds label the target set once a round, the teacher's labels improve every step.

As in DACS's and DAFormer's code, the teacher labels in train mode (BatchNorm with the target batch's
own statistics; only the parameters are averaged) and the loss is the mean over all pixels of the
weighted cross-entropy. Left out of DAFormer's recipe: the colour jitter and blur of the mixed
images, rare-class sampling and the ImageNet feature distance. Without mixing (mix "none") the segmenter learns the teacher's labels
on the target images themselves (mean-teacher self-training without a perturbation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from symda.terms.base import KEY, AdaptationTerm, Losses, non_negative, one_of, register, stream_id

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext

MIXES = ("classmix", "none")


@dataclass
class MeanTeacherConfig:
    """DACS's settings (its weight 1, EMA 0.99, confidence 0.968); off by default."""

    lambda_main: float = 0.0  # weight of the teacher-labelled loss; 0 turns the term off (DACS: 1)
    # the teacher's EMA decay (DACS 0.99; DAFormer's runs 0.999), ramped in as min(1 - 1/(t+1), alpha)
    alpha: float = 0.99
    threshold: float = 0.968  # the quality weight counts the pixels the teacher is this confident about
    mix: str = "classmix"  # classmix (DACS) | none (the target images as they are)


def classmix_masks(labels: torch.Tensor, generator: torch.Generator, ignore_index: int) -> torch.Tensor:
    """(N, H, W) bool: per image, the pixels of a random half (rounded up) of the classes its source
    label holds (DACS's ClassMix). labels: (N, H, W) int64 on the host."""
    import torch

    masks = torch.zeros(labels.shape, dtype=torch.bool)
    for i, label in enumerate(labels):
        classes = label.unique()
        classes = classes[classes != ignore_index]
        if len(classes) == 0:
            continue
        chosen = classes[torch.randperm(len(classes), generator=generator)[: (len(classes) + 1) // 2]]
        masks[i] = torch.isin(label, chosen)
    return masks


@register
class MeanTeacher(AdaptationTerm):
    """lambda_main x the confidence-weighted cross-entropy of the segmenter on the mixed batch against
    the teacher's labels; metrics loss_mt (unweighted) and mt_weight (the quality weight)."""

    name = "mean_teacher"
    Config = MeanTeacherConfig
    FIELDS = {"lambda_main": KEY, "alpha": KEY, "threshold": KEY, "mix": KEY}
    switch = "lambda_main"
    method = "DACS"
    loss_metric = "loss_mt"  # the unweighted loss's name in the step's metrics
    mix_key = "adapt.mean_teacher.mix"  # the config key that chose the mixing (error messages)

    def __init__(self, config: MeanTeacherConfig) -> None:
        super().__init__(config)
        # With ClassMix the term trains through its own forward pass of the mixed images and reads
        # only the target batch (the segmenter's pass on it runs only if another term uses it);
        # without it, it trains through the target stream's pass.
        mixing = config.mix == "classmix"
        self.stream = "source" if mixing else "target"
        self.batches = ("target",) if mixing else ()

    @classmethod
    def check(cls, config: MeanTeacherConfig) -> list[tuple[str, str]]:
        problems = [*non_negative(config, "lambda_main"), *one_of(config, "mix", MIXES)]
        for name in ("alpha", "threshold"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                problems.append((name, f"must be in [0, 1], got {getattr(config, name)!r}"))
        return problems

    def setup(self, ctx: TermContext) -> None:
        import copy

        import torch

        if ctx.model is None:
            raise ValueError("MeanTeacher needs the segmenter (TermContext.model)")
        self.student, self.runtime = ctx.model, ctx.runtime
        self.teacher = copy.deepcopy(ctx.model).train()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.updates = 0
        with ctx.seeded(stream_id(self.name) + ctx.runtime.rank):  # ClassMix's draws: a stream of its own
            seed = int(torch.randint(2**62, (1,)))
        self.generator = torch.Generator().manual_seed(seed)

    def _update_teacher(self) -> None:
        """teacher = alpha_t teacher + (1 - alpha_t) student over the parameters, alpha_t =
        min(1 - 1/(t+1), alpha) (DACS, DAFormer). BatchNorm statistics are not averaged: the teacher
        labels in train mode, with the target batch's own statistics, as both codes do."""
        import torch

        alpha = min(1.0 - 1.0 / (self.updates + 1), self.config.alpha)
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
        self.updates += 1

    def teacher_labels(self, step: Step) -> tuple[torch.Tensor, torch.Tensor, Losses]:
        """The teacher's labels of the target batch, (N, H, W) int64 on the device (IGNORE_INDEX where
        it gives none), the (N, H, W) weight of each target pixel's loss, and the metrics: DACS's rule
        (every pixel labelled by the teacher's argmax, weighted by the batch's share of confident
        pixels). OnlinePseudoLabels (symda.terms.online_labels) labels by the pseudo-label policy."""
        import torch

        from symda.models.losses import upsampled

        target = step.batches["target"]["image"]
        with torch.no_grad(), self.runtime.autocast():
            teacher_logits = self.teacher(self.runtime.images(target))["main"]
        probabilities = torch.softmax(upsampled(teacher_logits, tuple(target.shape[-2:])), dim=1)
        confidence, labels = probabilities.max(dim=1)  # (N, H, W)
        quality = (confidence >= self.config.threshold).float().mean()
        return labels, quality.expand_as(confidence), {"mt_weight": quality}

    def loss(self, step: Step) -> tuple[torch.Tensor, Losses]:
        import torch
        import torch.nn.functional as F

        from symda.models.losses import IGNORE_INDEX, upsampled

        self._update_teacher()  # from the segmenter's weights after the last step (DAFormer's order)
        target = step.batches["target"]["image"]
        size = tuple(target.shape[-2:])
        labels, weights, metrics = self.teacher_labels(step)
        if self.config.mix == "classmix":
            source = step.batches["source"]
            if tuple(source["image"].shape[-2:]) != size:
                raise ValueError(f"{self.mix_key} classmix pastes source crops onto target crops: the "
                                 f"source batch is {tuple(source['image'].shape[-2:])}, the target {size} "
                                 f"(set data.crop_size, or mix none)")  # fmt: skip
            mask = classmix_masks(source["label"], self.generator, IGNORE_INDEX)
            mixed = torch.where(mask[:, None], source["image"], target)
            mask = self.runtime.to(mask)
            labels = torch.where(mask, step.labels("source"), labels)
            weights = torch.where(mask, torch.ones_like(weights), weights)
            with self.runtime.autocast():
                logits = self.student(self.runtime.images(mixed))["main"]
        else:
            logits = step.outputs("target")["main"]
        pixel_loss = F.cross_entropy(
            upsampled(logits, size), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )
        loss = (pixel_loss * weights).mean()  # over every pixel, ignored ones (0) too: DACS's reduction
        return self.config.lambda_main * loss, {self.loss_metric: loss.detach(), **metrics}

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict(), "updates": self.updates,
                "generator": self.generator.get_state()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], where: str) -> None:
        try:
            self.teacher.load_state_dict(state["teacher"])
            self.updates = int(state["updates"])
            self.generator.set_state(state["generator"])
        except (KeyError, RuntimeError, TypeError) as err:
            raise ValueError(f"{where}: the mean teacher's state does not fit this run ({err})") from None
