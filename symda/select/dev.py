"""DEV, deep embedded validation (You et al., ICML 2019), for a segmentation network: its arithmetic.
The network's side (drawing embedded pixels, the score of a network) is symda.evaluate.dev_score.

The risk of a network on the target equals its risk on the source weighted by the density ratio
w(x) = p_t(x) / p_s(x) of its embedding x. DEV estimates w with a domain classifier on embeddings,
weights the per-sample loss L on held-out labelled source data, and lowers the estimate's variance with
a control variate (E[w] = 1):

    DEV = mean(w L) + eta mean(w) - eta,   eta = -Cov(w L, w) / Var(w)

as the authors' `get_dev_risk` does (thuml/Deep-Embedded-Validation). Lower is better; the validator
is -DEV. Made dense here: a sample is a pixel of the network's embedding (the classifier's input),
DEV_PIXELS_PER_IMAGE of them per image, drawn from a generator seeded by the image's index. The held-out
source images split in two by index: the even ones train the domain classifier against the target
pixels, the odd ones are DEV's validation set (the authors keep the classifier's training source data
apart from the validation data). The domain classifier is a logistic regression (skada's default;
the authors use an MLP) whose L2 weight is chosen on a fifth of its rows. The authors choose by
accuracy; we choose by held-out log-loss, because w is the classifier's odds and only a calibrated
classifier gives the right odds: with a thousand embedding dimensions the two domains separate, and
the most accurate fit is a nearly unregularised one whose odds, and so DEV, run to thousands.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

DEV_PIXELS_PER_IMAGE = 64  # pixels drawn per image (symda.evaluate.embedded_pixels)
DEV_L2 = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # the domain classifier's L2 weights tried


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, steps: int = 100) -> torch.Tensor:
    """Weights (D + 1,) of an L2-regularised logistic regression of y (M,) in {0, 1} on x (M, D)."""
    xb = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    w = torch.zeros(xb.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xb @ w, y.double()) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def density_ratios(source: torch.Tensor, target: torch.Tensor, validation: torch.Tensor) -> np.ndarray:
    """w = p_t(x) / p_s(x) at each `validation` row (M_v, D), from a domain classifier trained on the
    `source` (M_s, D) and `target` (M_t, D) rows: P(target | x) / P(source | x) * M_s / M_t."""
    x = torch.cat([source, target]).double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    x = (x - mean) / std
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    held, fit = order[: len(x) // 5], order[len(x) // 5 :]

    def held_out_loss(weights: torch.Tensor) -> float:
        xb = torch.cat([x[held], torch.ones(len(held), 1, dtype=x.dtype)], dim=1)
        return float(F.binary_cross_entropy_with_logits(xb @ weights, y[held].double()))

    best = min((_fit_logistic(x[fit], y[fit], l2) for l2 in DEV_L2), key=held_out_loss)
    v = (validation.double() - mean) / std
    logit = torch.cat([v, torch.ones(len(v), 1, dtype=v.dtype)], dim=1) @ best  # log P(t|x) / P(s|x)
    return (logit.exp() * len(source) / len(target)).numpy()


def dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV's control-variate estimate of the target risk (lower is better), as its authors compute it."""
    weighted = weights * losses
    if len(weights) < 2:
        return math.nan
    var_w = float(np.var(weights, ddof=1))
    eta = -float(np.cov(weighted, weights)[0, 1]) / var_w if var_w > 0 else 0.0
    return float(weighted.mean() + eta * weights.mean() - eta)
