"""DEV, deep embedded validation (You et al., ICML 2019), for a segmentation network.

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

from symda.data.dataset import SegmentationDataset
from symda.data.labels import IGNORE_INDEX

DEV_PIXELS_PER_IMAGE = 64
DEV_L2 = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # the domain classifier's L2 weights tried


@torch.no_grad()
def embedded_pixels(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    indices: list[int],
    labelled: bool,
    batch_size: int = 8,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings (M, D), per-pixel cross-entropy (M,) or None) of DEV_PIXELS_PER_IMAGE pixels of each
    image `indices` of `dataset`, at the resolution of the network's classifier input. `labelled`
    (held-out source images): only labelled pixels are drawn and their loss is returned; otherwise
    (target images) no label is read, whether the dataset has them or not."""
    from symda.evaluate import model_device

    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    feats: list[torch.Tensor] = []
    losses: list[torch.Tensor] = []
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            items = [dataset[i] for i in chunk]
            captured.clear()
            logits = model(torch.stack([it["image"] for it in items]).to(model_device(model)))["main"]
            emb = captured[-1].float()  # (N, D, h, w)
            n, d, h, w = emb.shape
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
            for k, (item, index) in enumerate(zip(items, chunk, strict=True)):
                gen = torch.Generator().manual_seed(int(index))
                order = torch.randperm(h * w, generator=gen)
                if labelled:
                    lab = F.interpolate(item["label"][None, None].float(), size=(h, w), mode="nearest")
                    lab = lab.flatten().long()
                    order = order[lab[order] != IGNORE_INDEX]
                pick = order[:DEV_PIXELS_PER_IMAGE].to(emb.device)
                feats.append(emb[k].reshape(d, h * w)[:, pick].T.cpu())
                if labelled:
                    target = lab.to(emb.device)[pick]
                    pixel_logits = logits[k].reshape(-1, h * w)[:, pick].T
                    losses.append(F.cross_entropy(pixel_logits, target, reduction="none").cpu())
    finally:
        hook.remove()
    if not feats:
        return torch.zeros(0, 0), None
    return torch.cat(feats), (torch.cat(losses) if labelled else None)


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


def dev_score(
    model: torch.nn.Module, holdout: SegmentationDataset, target: SegmentationDataset, batch_size: int = 8
) -> float:
    """-DEV of `model`: held-out labelled source images, unlabelled target images (their labels are
    never read). NaN with fewer than 2 held-out images (one trains the domain classifier, one
    validates)."""
    if len(holdout) < 2 or len(target) == 0:
        return math.nan
    src_fit, src_val = list(range(0, len(holdout), 2)), list(range(1, len(holdout), 2))
    source, _ = embedded_pixels(model, holdout, src_fit, True, batch_size)
    validation, losses = embedded_pixels(model, holdout, src_val, True, batch_size)
    tgt, _ = embedded_pixels(model, target, list(range(len(target))), False, batch_size)
    if len(source) == 0 or len(validation) < 2 or losses is None:
        return math.nan
    weights = density_ratios(source, tgt, validation)
    return -dev_risk(weights, losses.double().numpy())
