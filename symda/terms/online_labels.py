"""Online pseudo labels (`self_train.labels: online`, the default): a self-training round whose target
labels come from a mean teacher of the network every batch (DACS's online form), chosen by the round's
pseudo-label policy (the method's confidence map and thresholds), instead of once per round.

The round starts from its network; the teacher, the exponential moving average of that network
(`self_train.teacher_ema`), labels each target batch in train mode as DACS's does. Where the round has
a partner (the other path's network at the round's start, frozen, in eval mode: F_S on the batch's T'
crops for F_T, F_T on the T crops for F_S), the labels are the fused prediction and the pixels kept
are those whose M_conf passes the thresholds, exactly as the offline labels are chosen: the pipeline
hands the term that rule (`symda.pseudo.thresholds.policy_labels` with the pseudo.* policy and the
thresholds of the round's offline labels, since a batch is too small to estimate a class's quantile).
The segmenter learns the kept labels on a ClassMix of the batch (`self_train.mix`), or on the target
images as they are; the loss is the mean over all pixels (unkept ones add 0: a batch with few kept
pixels weighs less, as DACS's quality weight does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from symda.terms.mean_teacher import MeanTeacher, MeanTeacherConfig

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext
    from symda.terms.base import Losses

LabelRule = Callable[["torch.Tensor", "torch.Tensor | None"], "torch.Tensor"]
"""rule(p_t, p_s) -> (N, H, W) int64 labels, IGNORE_INDEX where none is kept: the probabilities
(N, C, H, W) of F_T's and F_S's side (p_s None with one path)."""


class OnlinePseudoLabels(MeanTeacher):
    """`weight` x the cross-entropy of the segmenter on the (mixed) target batch against the labels
    `rule` gives the teacher's (and the partner's) probabilities; metrics loss_pseudo (unweighted) and
    pseudo_kept (the share of the batch's target pixels labelled). With a `partner` network the target
    batches carry "partner_image" (the same crops in the partner's style: PairedDataset);
    `teacher_is_t`: the teacher is F_T's (its probabilities are p_t), else F_S's."""

    name = "online_pseudo_labels"
    loss_metric = "loss_pseudo"
    mix_key = "self_train.mix"

    def __init__(self, weight: float, ema: float, mix: str, rule: LabelRule,
                 partner: torch.nn.Module | None = None, teacher_is_t: bool = True) -> None:  # fmt: skip
        super().__init__(MeanTeacherConfig(lambda_main=weight, alpha=ema, mix=mix))
        self.rule, self.partner, self.teacher_is_t = rule, partner, teacher_is_t

    def setup(self, ctx: TermContext) -> None:
        super().setup(ctx)
        if self.partner is not None:
            self.partner = ctx.runtime.module(self.partner).eval()
            for p in self.partner.parameters():
                p.requires_grad_(False)

    def _probabilities(self, net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 softmax of `net`'s main logits upsampled to the images' size."""
        import torch

        from symda.models.losses import upsampled

        with torch.no_grad(), self.runtime.autocast():
            logits = net(self.runtime.images(images))["main"]
        return torch.softmax(upsampled(logits, tuple(images.shape[-2:])).float(), dim=1)

    def teacher_labels(self, step: Step) -> tuple[torch.Tensor, torch.Tensor, Losses]:
        import torch

        from symda.models.losses import IGNORE_INDEX

        batch = step.batches["target"]
        p_teacher = self._probabilities(self.teacher, batch["image"])
        p_t, p_s = p_teacher, None
        if self.partner is not None:
            p_partner = self._probabilities(self.partner, batch["partner_image"])
            p_t, p_s = (p_teacher, p_partner) if self.teacher_is_t else (p_partner, p_teacher)
        labels = self.rule(p_t, p_s)
        kept = (labels != IGNORE_INDEX).float().mean()
        return labels, torch.ones(labels.shape, device=labels.device), {"pseudo_kept": kept}
