"""Choosing models without target labels: validators and how well they choose.

- `symda.select.validators` (torch): what the validators read of a network's predictions on
  unlabelled target images (`TargetPredictions`), and each validator as a plain function of it;
- `symda.select.stats` (numpy/pandas only, so analysis scripts may import it): rank correlation with
  a bootstrap interval, top-k regret, the per-seed and pooled table of a validator study.

This module only names the validators (no torch), for the config, the sweep driver and analysis.
"""

from __future__ import annotations

# name -> one line: what it measures (higher is better for every one). The order is the tables' order.
VALIDATORS: dict[str, str] = {
    "agreement": "pixels where F_T(v) and F_S(v') predict the same class (the two paths' agreement)",
    "agreement_miou": "mIoU of F_T(v)'s prediction against F_S(v')'s: agreement weighted like the metric",
    "agreement_ref": "pixels where F_T(v) and a reference network that made no pseudo labels agree (select.reference)",
    "agreement_ref_miou": "mIoU of F_T(v)'s prediction against the reference network's (select.reference)",
    "entropy": "minus F_T's mean per-pixel prediction entropy (normalised by ln C)",
    "info_max": "entropy of F_T's mean prediction minus its mean per-pixel entropy (normalised by ln C)",
    "snd": "soft neighbourhood density of 100 sampled pixels' softmax vectors per image (Saito et al. 2021)",
    "aug_agreement": "pixels where F_T(v) agrees with F_T on v flipped and on v at 3/4 size (mean of both)",
    "mixval": "MixVal: F_T on 0.55 v + 0.45 v_b agrees with F_T(v), mean of same-class and other-class pixels",
    "source_miou": "mIoU of the network on held-out source images (S' for F_T; needs data.source_holdout)",
    "dev": "minus DEV's importance-weighted source risk (You et al. 2019; needs data.source_holdout)",
}
# What a validator needs beyond the network's own target predictions (absent: the score is NaN).
NEEDS: dict[str, str] = {
    "agreement": "partner",
    "agreement_miou": "partner",
    "source_miou": "source_holdout",
    "dev": "source_holdout",
}
# The true score a study compares them with, and what `--select-by` also accepts.
TRUE_METRIC = "miou"
# The validator sweeps and checkpoint selection use by default: the winner of the validator study
# (docs/results/validators/validators.md: pooled Spearman rho +0.87, top-1 regret 0.82 mIoU).
DEFAULT_VALIDATOR = "agreement"


def check_name(name: str, what: str = "validator") -> str:
    """`name` if it is a validator (or the true metric); ValueError naming it and the choices otherwise."""
    if name != TRUE_METRIC and name not in VALIDATORS:
        raise ValueError(f"{what}: {name!r} is not one of {[TRUE_METRIC, *VALIDATORS]}")
    return name
