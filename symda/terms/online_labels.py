"""Online pseudo labels (`self_train.labels: online`): a self-training round whose target labels come
from a mean teacher of the network every batch (DACS's online form), chosen by the round's
pseudo-label policy (the method's confidence map and thresholds), instead of once per round.

The round starts from its network; the teacher, the exponential moving average of that network
(`self_train.teacher_ema`), labels each target batch in train mode as DACS's does. Where the round has
a partner (the other path's network at the round's start, frozen, in eval mode: F_S on the batch's T'
crops for F_T, F_T on the T crops for F_S), the labels are the fused prediction and the pixels kept
are those whose M_conf passes the thresholds, exactly as `symda.pseudo.generate` labels offline: the
same `confidence_map` (pseudo.fusion_weight, consistency, conf_weight) and `select`. The thresholds are
the round's offline pseudo labels' (pseudo_stats.json: tau, or BDL's capped per-class quantile of
M_conf over the whole target split at the round's start), since a batch is too small to estimate a
class's quantile. The segmenter learns the kept labels on a ClassMix of the batch
(`self_train.mix`), or on the target images as they are; the loss is the mean over all pixels
(unkept ones add 0: a batch with few confident pixels weighs less, as DACS's quality weight does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from symda.terms.mean_teacher import MeanTeacher, MeanTeacherConfig

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext
    from symda.config import ModelConfig, PseudoConfig
    from symda.terms.base import Losses


@dataclass(frozen=True)
class PartnerNetwork:
    """The other path's network that the policy's consistency compares the teacher with: its model
    config and checkpoint, and whether the teacher is F_T (then the partner is F_S: P_T = the
    teacher's probabilities in the fusion) or F_S."""

    model: ModelConfig
    checkpoint: Path
    teacher_is_t: bool = True


class OnlinePseudoLabels(MeanTeacher):
    """`weight` x the cross-entropy of the segmenter on the (mixed) target batch against the teacher's
    labels at the pixels the policy keeps; metrics loss_pseudo (unweighted) and pseudo_kept (the share
    of the batch's target pixels kept). The target batches carry "partner_image" (the same crops in
    the partner's style: symda.data.dataset.PairedDataset) when there is a partner."""

    name = "online_pseudo_labels"
    loss_metric = "loss_pseudo"
    mix_key = "self_train.mix"

    def __init__(self, weight: float, ema: float, mix: str, policy: PseudoConfig, thresholds: list[float],
                 partner: PartnerNetwork | None = None) -> None:  # fmt: skip
        super().__init__(MeanTeacherConfig(lambda_main=weight, alpha=ema, mix=mix))
        self.policy, self.thresholds, self.partner = policy, list(thresholds), partner

    def setup(self, ctx: TermContext) -> None:
        import torch

        super().setup(ctx)
        self.partner_net = None
        if self.partner is not None:
            from symda.adapt.networks import load_segmenter

            self.partner_net = ctx.runtime.module(load_segmenter(self.partner.model, self.partner.checkpoint))
            for p in self.partner_net.parameters():
                p.requires_grad_(False)
        self.threshold_values = ctx.runtime.to(torch.tensor(self.thresholds, dtype=torch.float32))

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
        from symda.pseudo.confidence import confidence_map
        from symda.pseudo.thresholds import select

        batch = step.batches["target"]
        p_teacher = self._probabilities(self.teacher, batch["image"])
        p_t, p_s = p_teacher, None
        if self.partner_net is not None:
            p_partner = self._probabilities(self.partner_net, batch["partner_image"])
            p_t, p_s = (p_teacher, p_partner) if self.partner.teacher_is_t else (p_partner, p_teacher)
        pred, m_conf, _, _ = confidence_map(
            p_t, p_s, self.policy.fusion_weight, self.policy.consistency, self.policy.conf_weight
        )
        labels = select(pred, m_conf, self.threshold_values).long()
        kept = labels != IGNORE_INDEX
        return labels, torch.ones_like(m_conf), {"pseudo_kept": kept.float().mean()}
