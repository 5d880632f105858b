"""Rank correlation, regret and the study table on a fixture."""

import math

import numpy as np
import pandas as pd
import pytest

from symda.select import stats


def test_spearman_of_monotone_reversed_and_tied():
    assert stats.spearman([1, 2, 3, 4], [10, 20, 25, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(stats.spearman([1, 2], [1, 2]))  # fewer than 3 pairs
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))  # a constant validator says nothing
    assert stats.spearman([1, 2, np.nan, 4], [1, 2, 9, 4]) == pytest.approx(1.0)  # NaN pairs dropped


def test_regret_top1_and_top3():
    truth = [30.0, 40.0, 35.0, 20.0]
    assert stats.regret([0.1, 0.9, 0.5, 0.2], truth) == 0.0  # picked the best
    assert stats.regret([0.9, 0.1, 0.5, 0.2], truth) == 10.0  # picked the 30
    # Its top 3 are 30, 35, 20: the best of them is 35, 5 below the best.
    assert stats.regret([0.9, 0.1, 0.5, 0.6], truth, k=3) == 5.0
    # A candidate the validator could not score cannot be picked, but still counts as the best there was.
    assert stats.regret([np.nan, 0.1, 0.5, 0.2], [50.0, 40.0, 35.0, 20.0]) == 15.0
    assert math.isnan(stats.regret([np.nan] * 4, truth))


def test_pick_is_the_highest_finite_score():
    assert stats.pick([0.2, np.nan, 0.7, 0.7]) == 2
    assert stats.pick([np.nan, np.nan]) is None


def study_fixture() -> pd.DataFrame:
    """Two seeds of 8 candidates: 'good' ranks them exactly, 'bad' in reverse, 'noisy' in between."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in (0, 1):
        truth = np.linspace(20, 40, 8) + seed
        for t in truth:
            rows.append(dict(seed=seed, miou=t, good=t / 100, bad=-t, noisy=t + rng.normal(0, 5)))
    return pd.DataFrame(rows)


def test_study_table_per_seed_and_pooled():
    table = stats.validator_study(study_fixture(), ["good", "bad", "noisy"], resamples=200)
    assert list(table["group"].unique()) == [0, 1, "pooled"]
    row = table.set_index(["group", "validator"])
    for g in (0, 1, "pooled"):
        assert row.loc[(g, "good"), "rho"] == pytest.approx(1.0)
        assert row.loc[(g, "good"), "regret1"] == 0.0
        assert row.loc[(g, "bad"), "rho"] == pytest.approx(-1.0)
        assert row.loc[(g, "bad"), "regret1"] == pytest.approx(20.0)  # picks the worst of 20..40
    assert row.loc[("pooled", "good"), "n"] == 16 and row.loc[(0, "good"), "n"] == 8
    # The interval holds the estimate and, for a noisy validator, has some width.
    lo, hi, rho = row.loc[("pooled", "noisy"), ["rho_lo", "rho_hi", "rho"]]
    assert lo <= rho <= hi and hi - lo > 0.05
    # Pooled figures are the means of the seeds'.
    per_seed = row.loc[[(0, "noisy"), (1, "noisy")], "regret3"].mean()
    assert row.loc[("pooled", "noisy"), "regret3"] == pytest.approx(per_seed)


def test_checkpoint_choices_name_each_validators_pick_and_its_true_score():
    evaluations = [
        {"step": 50, "val_miou": 30.0, "entropy": -0.2, "agreement": float("nan")},
        {"step": 100, "val_miou": 35.0, "entropy": -0.3, "agreement": float("nan")},
        {"step": 150, "val_miou": 33.0, "entropy": -0.1, "agreement": float("nan")},
    ]
    choices = stats.checkpoint_choices(evaluations[::-1], ["entropy", "agreement"])
    assert choices["entropy"] == {"step": 150, "miou": 33.0}
    assert choices["last"] == {"step": 150, "miou": 33.0}
    assert choices["best"] == {"step": 100, "miou": 35.0}
    assert choices["agreement"]["step"] is None and math.isnan(choices["agreement"]["miou"])
    assert stats.choose(evaluations, "entropy")["step"] == 150
    assert stats.checkpoint_choices([], ["entropy"]) == {}
