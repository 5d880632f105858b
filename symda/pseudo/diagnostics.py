"""Why the consistency term helps or not: pseudo-label diagnostics against the target's true labels.

SynthCity writes labels for the target train split, so the choices of the pseudo-label stage can be
judged pixel by pixel (a diagnostic view only: training never reads these labels). Two questions:

1. **Which score picks the most reliable pixels?** Compare per-class precision *at equal coverage*:
   for each predicted class keep its most confident fraction q of pixels under each score (the
   class-balanced selection the method uses) and count how many kept pixels are right. The scores
   (SCORES) are the single path's, prior work's and ours; the fused prediction is the same for
   M_prob, M_consis and M_conf, so among those only the ranking differs.
2. **When the two paths disagree, who is right?** Over labelled pixels: how often argmax P_T differs
   from argmax P_S, and in those pixels how often F_T, F_S or the fused prediction is right.

`PseudoDiagnostics.update` takes one image's full-size probabilities of both paths and its true
labels; memory is O(scores * C * bins).
"""

from __future__ import annotations

import numpy as np
import torch

from symda.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from symda.pseudo.confidence import consistency_map, fuse, fuse_per_class

SCORES = {
    "prob_t": "F_T alone: argmax P_T ranked by max P_T (the single path: BDL-like)",
    "prob": "M_prob of the fused P (DPL's fused probability; our prob-only pair)",
    "consis": "M_consis alone (soft, 1 - JS / ln 2), the fused prediction",
    "conf_soft": "M_conf = (M_prob + M_consis) / 2 with the soft map (ours)",
    "conf_hard": "M_conf with the hard map (argmax agreement)",
    "adpl": "ADPL: the paths fused with per-class weights (their mean confidence per class), its max",
}
"""Each pixel-ranking score the diagnostics compare, with what it is (prediction and ranking)."""
COVERAGES = (0.2, 0.4, 0.6, 0.8)  # the shares of each predicted class's pixels `summary` keeps


class PseudoDiagnostics:
    """Streaming counts for `precision_at_coverage` and `disagreement` (labelled pixels only).

    path_weights: ADPL's (C,) per-class weight of F_T (`symda.pseudo.confidence.class_path_weights`
    over the same split); None leaves the "adpl" score out. fusion_weight and conf_weight are the
    run's pseudo.fusion_weight and pseudo.conf_weight.
    """

    def __init__(self, path_weights: torch.Tensor | None = None, bins: int = 1000,
                 fusion_weight: float = 0.5, conf_weight: float = 0.5) -> None:  # fmt: skip
        self.bins = bins
        self.fusion_weight, self.conf_weight = fusion_weight, conf_weight
        self.path_weights = path_weights
        self.scores = tuple(s for s in SCORES if s != "adpl" or path_weights is not None)
        # [score, predicted class, bin] counts of all and of correct pixels
        self.total = np.zeros((len(self.scores), NUM_CLASSES, bins), dtype=np.int64)
        self.correct = np.zeros_like(self.total)
        self.pixels = 0
        self.disagree = 0
        self.right_when_disagree = {"F_T": 0, "F_S": 0, "fused": 0, "neither path": 0}
        self.disagree_by_class = np.zeros(NUM_CLASSES, dtype=np.int64)  # by true class
        self.pixels_by_class = np.zeros(NUM_CLASSES, dtype=np.int64)

    def choices(self, p_t: torch.Tensor, p_s: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{score: (prediction (N, H, W) int64, ranking (N, H, W) in [0, 1])} of probabilities
        (N, C, H, W) of the two paths, for every score of `self.scores`."""
        p = fuse(p_t, p_s, self.fusion_weight)
        m_prob, pred = p.max(dim=1)
        m_t, pred_t = p_t.max(dim=1)
        consis = consistency_map(p_t, p_s, "soft")
        agree = (pred_t == p_s.max(dim=1).indices).float()
        w = self.conf_weight
        out = {
            "prob_t": (pred_t, m_t),
            "prob": (pred, m_prob),
            "consis": (pred, consis),
            "conf_soft": (pred, w * m_prob + (1 - w) * consis),
            "conf_hard": (pred, w * m_prob + (1 - w) * agree),
        }
        if self.path_weights is not None:
            m_adpl, pred_adpl = fuse_per_class(p_t, p_s, self.path_weights).max(dim=1)
            out["adpl"] = (pred_adpl, m_adpl)
        return out

    def update(self, p_t: torch.Tensor, p_s: torch.Tensor, label: np.ndarray) -> None:
        """One image: p_t, p_s (1, C, H, W) probabilities of the two paths at the label's size;
        label (H, W) uint8 trainIds (IGNORE_INDEX left out)."""
        y = torch.from_numpy(label.astype(np.int64))
        valid = y != IGNORE_INDEX
        if not bool(valid.any()):
            return
        y = y[valid]
        choices = {name: (pred[0][valid], rank[0][valid]) for name, (pred, rank) in
                   self.choices(p_t.float(), p_s.float()).items()}  # fmt: skip
        size = NUM_CLASSES * self.bins
        for i, name in enumerate(self.scores):
            pred, rank = choices[name]
            b = (rank.clamp(0, 1) * (self.bins - 1)).round().long()
            flat = pred * self.bins + b
            right = pred == y
            self.total[i] += torch.bincount(flat, minlength=size).numpy().reshape(NUM_CLASSES, self.bins)
            self.correct[i] += (
                torch.bincount(flat[right], minlength=size).numpy().reshape(NUM_CLASSES, self.bins)
            )
        pred, pred_t = choices["prob"][0], choices["prob_t"][0]
        pred_s = p_s[0].max(dim=0).indices[valid]
        self.pixels += int(y.numel())
        self.pixels_by_class += torch.bincount(y, minlength=NUM_CLASSES).numpy()[:NUM_CLASSES]
        differ = pred_t != pred_s
        self.disagree += int(differ.sum())
        self.disagree_by_class += torch.bincount(y[differ], minlength=NUM_CLASSES).numpy()[:NUM_CLASSES]
        t_right, s_right = pred_t[differ] == y[differ], pred_s[differ] == y[differ]
        self.right_when_disagree["F_T"] += int(t_right.sum())
        self.right_when_disagree["F_S"] += int(s_right.sum())
        self.right_when_disagree["fused"] += int((pred[differ] == y[differ]).sum())
        self.right_when_disagree["neither path"] += int((~t_right & ~s_right).sum())

    def precision_at_coverage(self, coverage: float) -> dict[str, dict[str, float]]:
        """{score: {class: precision, ..., "all": pooled precision}} keeping, for each predicted class,
        its `coverage` most confident pixels under that score (NaN for classes never predicted).

        Ties at the cut bin are kept in proportion, so every score keeps the same number of pixels.
        """
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage: {coverage} is not in (0, 1]")
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.scores):
            per_class, kept_all, right_all = {}, 0.0, 0.0
            for c, cls in enumerate(CLASS_NAMES):
                kept, right = _top_fraction(self.total[i, c], self.correct[i, c], coverage)
                per_class[cls] = right / kept if kept > 0 else float("nan")
                kept_all, right_all = kept_all + kept, right_all + right
            per_class["all"] = right_all / kept_all if kept_all > 0 else float("nan")
            out[name] = per_class
        return out

    def disagreement(self) -> dict[str, float]:
        """Share of labelled pixels where argmax P_T != argmax P_S, and, among those, the share each
        prediction gets right."""
        d = max(self.disagree, 1)
        return {
            "disagree": self.disagree / max(self.pixels, 1),
            **{f"{k} right": v / d for k, v in self.right_when_disagree.items()},
        }

    def disagreement_by_class(self) -> dict[str, float]:
        """Share of each true class's pixels where the two paths disagree (NaN for absent classes)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(self.pixels_by_class > 0, self.disagree_by_class / self.pixels_by_class, np.nan)
        return {cls: float(v) for cls, v in zip(CLASS_NAMES, share, strict=True)}

    def summary(self) -> dict:
        """The diagnostics as plain numbers (what `symda diagnose` writes): precision at each of
        COVERAGES per score and class, the paths' disagreement, and its share per true class."""
        weights = (
            None
            if self.path_weights is None
            else dict(zip(CLASS_NAMES, map(float, self.path_weights), strict=True))
        )
        return {"conf_weight": self.conf_weight, "fusion_weight": self.fusion_weight, "pixels": self.pixels,
                "scores": {s: SCORES[s] for s in self.scores}, "adpl_weights_of_F_T": weights,
                "precision_at_coverage": {str(q): self.precision_at_coverage(q) for q in COVERAGES},
                "disagreement": self.disagreement(), "disagreement_by_class": self.disagreement_by_class()}  # fmt: skip


def _top_fraction(total: np.ndarray, correct: np.ndarray, fraction: float) -> tuple[float, float]:
    """(kept, right) when keeping the top `fraction` of a class's pixels from its (bins,) histograms."""
    n = float(total.sum())
    if n == 0:
        return 0.0, 0.0
    want = fraction * n
    kept = right = 0.0
    for b in range(len(total) - 1, -1, -1):  # from the most confident bin down
        if kept + total[b] >= want:
            share = (want - kept) / total[b] if total[b] else 0.0
            return want, right + share * correct[b]
        kept += total[b]
        right += correct[b]
    return kept, right
