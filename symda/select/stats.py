"""How well a validator chooses: rank correlation with true mIoU, and the mIoU lost by its pick.

numpy and pandas only (analysis scripts and the sweep summary import it without torch). Selection
happens within one set of candidates (one seed's sweep), so a study's pooled figures are means of
the per-seed ones: offsets between seeds say nothing about choosing within one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

# The selection study's goal for a validator among configurations at equal progress, per sweep kind
# (pooled over seeds): what the report and a sweep's summary check.
GOAL_RHO, GOAL_REGRET = 0.7, 0.5

BOOTSTRAP = 1000


def _ranks(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank().to_numpy()


def spearman(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman's rho (Pearson of average ranks) over the pairs where both are finite; NaN with fewer
    than 3 pairs or a constant side."""
    x, y = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx, ry = _ranks(x[ok]), _ranks(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def regret(scores: Sequence[float], truth: Sequence[float], k: int = 1) -> float:
    """Best true score minus the best true score among the k candidates the validator ranks highest
    (0 = it picked the best). A candidate whose validator score is not finite cannot be picked (but
    its true score still sets the best there was); NaN when none can be picked."""
    x, y = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return math.nan
    top = np.argsort(-x[ok], kind="stable")[:k]
    return float(np.nanmax(y) - y[ok][top].max())


def pick(scores: Sequence[float]) -> int | None:
    """Index of the candidate with the highest finite score (the first of ties); None if there is none."""
    x = np.asarray(scores, dtype=float)
    if not np.isfinite(x).any():
        return None
    return int(np.nanargmax(np.where(np.isfinite(x), x, -np.inf)))


def _group_stats(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    return spearman(x, y), regret(x, y, 1), regret(x, y, 3)


def validator_study(
    frame: pd.DataFrame,
    validators: Sequence[str],
    truth: str = "miou",
    group: str = "seed",
    resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group and pooled: for each validator column, Spearman rho with `truth` and its 95% bootstrap
    interval (resampling candidates within each group), top-1 and top-3 regret, and the number of
    candidates it scored.

    Returns one row per (group, validator), group "pooled" last: columns group, validator, n, rho,
    rho_lo, rho_hi, regret1, regret3 (pooled: means over the groups; its interval resamples every
    group at once and takes the mean rho of each resample).
    """
    rng = np.random.default_rng(seed)
    groups = {g: part for g, part in frame.groupby(group, sort=True)}
    # One resampling plan per group, shared by every validator (so their intervals are comparable).
    plans = {g: rng.integers(0, len(part), size=(resamples, len(part))) for g, part in groups.items()}
    rows = []
    for name in validators:
        group_boots = []
        per_group = []
        for g, part in groups.items():
            x, y = part[name].to_numpy(float), part[truth].to_numpy(float)
            rho, r1, r3 = _group_stats(x, y)
            boots = np.array([spearman(x[idx], y[idx]) for idx in plans[g]])
            group_boots.append(boots)
            lo, hi = _interval(boots)
            n = int((np.isfinite(x) & np.isfinite(y)).sum())
            per_group.append((rho, r1, r3))
            rows.append(
                dict(group=g, validator=name, n=n, rho=rho, rho_lo=lo, rho_hi=hi, regret1=r1, regret3=r3)
            )
        rho, r1, r3 = (
            float(np.mean(v)) if np.isfinite(v).all() else math.nan for v in zip(*per_group, strict=True)
        )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample constant in every group: NaN
            lo, hi = _interval(np.nanmean(np.stack(group_boots), axis=0))
        n = int(sum(r["n"] for r in rows if r["validator"] == name))
        rows.append(
            dict(group="pooled", validator=name, n=n, rho=rho, rho_lo=lo, rho_hi=hi, regret1=r1, regret3=r3)
        )
    out = pd.DataFrame(rows)
    order = {g: i for i, g in enumerate([*groups, "pooled"])}
    return out.sort_values(["group"], key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _interval(values: np.ndarray) -> tuple[float, float]:
    ok = values[np.isfinite(values)]
    if len(ok) < 10:
        return math.nan, math.nan
    return float(np.percentile(ok, 2.5)), float(np.percentile(ok, 97.5))


# ------------------------------------------------------------------------------ checkpoint selection


def choose(evaluations: Sequence[dict], by: str) -> dict | None:
    """The evaluation whose `by` score is highest (finite scores only; the earliest of ties), or None."""
    index = pick([float(e.get(by, math.nan)) for e in evaluations])
    return None if index is None else evaluations[index]


def checkpoint_choices(
    evaluations: Sequence[dict], validators: Sequence[str], truth: str = "val_miou"
) -> dict[str, dict[str, float | int | None]]:
    """Which of a stage's evaluations each validator would pick, and its true score:
    {validator | "last" | "best": {"step": step or None, "miou": true score of it or NaN}}.
    "last" is what a run without selection delivers, "best" what an oracle with target labels picks."""
    if not evaluations:
        return {}
    ordered = sorted(evaluations, key=lambda e: e["step"])
    out = {}
    for name in [*validators, "last", "best"]:
        chosen = ordered[-1] if name == "last" else choose(ordered, truth if name == "best" else name)
        out[name] = {
            "step": None if chosen is None else int(chosen["step"]),
            "miou": math.nan if chosen is None else float(chosen[truth]),
        }
    return out
