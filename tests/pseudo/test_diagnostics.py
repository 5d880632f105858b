import math

import numpy as np
import pytest
import torch

from symda.data.labels import IGNORE_INDEX
from symda.pseudo.diagnostics import PseudoDiagnostics, _top_fraction


def one_image(n: int = 1000, seed: int = 0, truth_where_paths_differ: int = 2):
    """A (1, n) image: F_T and the fusion predict road (0) everywhere, F_S says sidewalk (1) on the first
    30%, where the truth is `truth_where_paths_differ` (road elsewhere). M_prob is uninformative
    (uniform noise); M_consis is 0 exactly where the paths disagree."""
    g = torch.Generator().manual_seed(seed)
    label = np.zeros((1, n), dtype=np.uint8)
    pred_t = torch.zeros(1, n, dtype=torch.long)
    pred_s = pred_t.clone()
    differ = int(0.3 * n)
    pred_s[0, :differ] = 1
    label[0, :differ] = truth_where_paths_differ
    pred = pred_t.clone()
    m_prob = torch.rand(1, n, generator=g)
    m_consis = (pred_t == pred_s).float()
    return pred, m_prob, m_consis, pred_t, pred_s, label


def test_consistency_ranks_the_disagreeing_wrong_pixels_last():
    d = PseudoDiagnostics(bins=100)
    d.update(*one_image())
    prec = d.precision_at_coverage(0.5)
    # The wrong pixels are the disagreeing 30%: keeping the top half by consistency keeps none of them,
    # a random ranking about 30% of them.
    assert prec["conf_soft"]["road"] == pytest.approx(1.0)
    assert prec["conf_hard"]["road"] == pytest.approx(1.0)
    assert prec["conf_soft"]["all"] == pytest.approx(1.0)
    assert 0.6 < prec["prob"]["road"] < 0.8
    assert math.isnan(prec["prob"]["sky"])  # never predicted


def test_equal_coverage_keeps_the_same_number_of_pixels_for_every_score():
    d = PseudoDiagnostics(bins=50)
    d.update(*one_image(seed=3))
    for q in (0.1, 0.37, 1.0):
        kept = {}
        for i in range(len(d.total)):
            kept[i] = _top_fraction(d.total[i, 0], d.correct[i, 0], q)[0]
        assert len({round(v, 6) for v in kept.values()}) == 1
    assert d.precision_at_coverage(1.0)["prob"]["road"] == d.precision_at_coverage(1.0)["conf_soft"]["road"]
    with pytest.raises(ValueError, match="coverage"):
        d.precision_at_coverage(0.0)


def test_disagreement_counts_who_is_right_and_skips_ignored_pixels():
    pred, m_prob, m_consis, pred_t, pred_s, label = one_image(n=100, truth_where_paths_differ=0)
    pred[0, :10] = 1  # the fusion sides with F_S on a third of the disagreeing pixels
    label[0, 90:] = IGNORE_INDEX
    d = PseudoDiagnostics()
    d.update(pred, m_prob, m_consis, pred_t, pred_s, label)
    out = d.disagreement()
    assert d.pixels == 90
    assert out["disagree"] == pytest.approx(30 / 90)
    assert out["F_T right"] == 1.0 and out["F_S right"] == 0.0
    assert out["fused right"] == pytest.approx(20 / 30)
    assert out["neither path right"] == 0.0
    assert d.disagreement_by_class()["road"] == pytest.approx(30 / 90)
