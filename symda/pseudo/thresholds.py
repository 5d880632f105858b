"""Thresholds on M_conf: one global value, or a per-class quantile capped by a maximum (BDL's recipe).

The per-class quantile is read from a streaming histogram, so memory is O(classes x bins) whatever the
number of images. BDL's script keeps every probability map in host memory instead (about 25 GB for
Cityscapes train at 512x1024), which is why pseudo-label generation runs out of memory in the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from symda.data.labels import IGNORE_INDEX, NUM_CLASSES

if TYPE_CHECKING:
    from symda.config import PseudoConfig


class StreamingClassHistogram:
    """Per-class histogram of confidence values in [0, 1]: `bins` equal bins per class, int64 counts.

    Feed it (pred, m_conf) batch after batch with `update`; ask for per-class quantiles at the end.
    Nothing of the maps is kept, only the (num_classes, bins) counts.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, bins: int = 1000) -> None:
        if num_classes <= 0 or bins <= 0:
            raise ValueError(
                f"StreamingClassHistogram: num_classes and bins must be > 0, got {num_classes}, {bins}"
            )
        self.num_classes = num_classes
        self.bins = bins
        self._counts = torch.zeros(num_classes * bins, dtype=torch.int64)

    def update(self, pred: torch.Tensor, m_conf: torch.Tensor) -> None:
        """Count each pixel's confidence under its predicted class.

        pred: (N, H, W) int64 class ids (values outside [0, num_classes) are skipped, e.g. 255);
        m_conf: (N, H, W) confidences in [0, 1] (values outside are clamped into the end bins; NaN skipped).
        Tensors may live on any device; only the (C * bins) bincount is moved to the CPU.
        """
        if pred.shape != m_conf.shape:
            raise ValueError(
                f"update: pred {tuple(pred.shape)} and m_conf {tuple(m_conf.shape)} differ in shape"
            )
        pred, m_conf = pred.reshape(-1), m_conf.reshape(-1)
        valid = (pred >= 0) & (pred < self.num_classes) & ~torch.isnan(m_conf)
        # Value 1.0 belongs to the last bin, not to a bin past the end.
        b = (m_conf[valid].float() * self.bins).floor().long().clamp_(0, self.bins - 1)
        idx = pred[valid].long() * self.bins + b
        self._counts += torch.bincount(idx, minlength=self.num_classes * self.bins).cpu()

    def counts(self) -> torch.Tensor:
        """(num_classes, bins) int64 counts (a copy)."""
        return self._counts.view(self.num_classes, self.bins).clone()

    def class_totals(self) -> torch.Tensor:
        """(num_classes,) int64: pixels seen per predicted class."""
        return self._counts.view(self.num_classes, self.bins).sum(dim=1)

    def quantile(self, q: float) -> torch.Tensor:
        """(num_classes,) float64 per-class q-quantile of the counted values; NaN for classes never seen.

        Values are taken as spread evenly inside their bin (the k-th smallest of n sits at the centre of
        its share of its bin), and the quantile interpolates linearly between the two order statistics
        around rank q * (n - 1), as numpy's default method does. Each estimated order statistic lies in
        the bin of the true one, so the result is within one bin width of numpy's quantile.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile: q must be in [0, 1], got {q}")
        counts = self._counts.view(self.num_classes, self.bins).double()
        cdf = counts.cumsum(dim=1)  # (C, bins)
        total = cdf[:, -1]
        rank = q * (total - 1).clamp(min=0.0)
        lo, hi = rank.floor(), rank.ceil()
        v_lo, v_hi = self._order_statistic(counts, cdf, lo), self._order_statistic(counts, cdf, hi)
        value = v_lo + (rank - lo) * (v_hi - v_lo)
        return torch.where(total > 0, value, torch.full_like(value, float("nan")))

    def _order_statistic(self, counts: torch.Tensor, cdf: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(C,) estimated value of the k-th smallest (0-based) count of each class; k: (C,) float64."""
        target = k + 0.5  # rank k occupies [k, k + 1) of the cumulative count
        b = torch.searchsorted(cdf, target[:, None], right=True)[:, 0].clamp(max=self.bins - 1)
        below = torch.where(b > 0, cdf.gather(1, (b - 1).clamp(min=0)[:, None])[:, 0], torch.zeros_like(k))
        in_bin = counts.gather(1, b[:, None])[:, 0].clamp(min=1.0)
        return (b.double() + ((target - below) / in_bin).clamp(0.0, 1.0)) / self.bins

    def nbytes(self) -> int:
        """Memory held by the counts (constant: num_classes * bins * 8 bytes)."""
        return self._counts.numel() * self._counts.element_size()


def class_thresholds(hist: StreamingClassHistogram, quantile: float, cap: float) -> torch.Tensor:
    """(C,) float32 thresholds min(per-class quantile of M_conf, cap).

    A class never predicted gets `cap`: no pixel of it exists in this pass, and if one appears later
    (e.g. another round's model) it is held to the strictest threshold the recipe allows.
    """
    q = hist.quantile(quantile)
    th = torch.where(torch.isnan(q), torch.full_like(q, cap), q.clamp(max=cap))
    return th.float()


def global_thresholds(tau: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(C,) float32 thresholds, all equal to tau."""
    return torch.full((num_classes,), float(tau), dtype=torch.float32)


def select(pred: torch.Tensor, m_conf: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Pseudo label (N, H, W) uint8: pred where m_conf >= thresholds[pred], else 255 (ignore).

    pred: (N, H, W) int64 in [0, C); m_conf: (N, H, W); thresholds: (C,).
    """
    th = thresholds.to(device=m_conf.device, dtype=m_conf.dtype)[pred]
    keep = m_conf >= th
    return torch.where(keep, pred, torch.full_like(pred, IGNORE_INDEX)).to(torch.uint8)


def policy_labels(p_t: torch.Tensor, p_s: torch.Tensor | None, policy: PseudoConfig,
                  thresholds: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The pseudo labels a policy gives pixels whose two paths' probabilities are p_t, p_s ((N, C, H, W);
    p_s None with one path): the fused prediction where M_conf passes its class's threshold, else
    IGNORE_INDEX; (N, H, W) int64. The offline generator's rule (`confidence_map`, `select`), for the
    online labels of a round (symda.terms.online_labels)."""
    from symda.pseudo.confidence import confidence_map

    pred, m_conf, _, _ = confidence_map(
        p_t, p_s, policy.fusion_weight, policy.consistency, policy.conf_weight
    )
    return select(pred, m_conf, thresholds).long()
