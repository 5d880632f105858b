import math

import numpy as np
import pytest
import torch

from symda.data.labels import IGNORE_INDEX, NUM_CLASSES
from symda.pseudo.confidence import class_confidence_sums, class_path_weights, fuse_per_class
from symda.pseudo.diagnostics import SCORES, PseudoDiagnostics, _top_fraction


def peaked(cls: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """(1, C, 1, n) probabilities: `conf` on class cls[i] at pixel i, the rest spread evenly."""
    p = ((1 - conf) / (NUM_CLASSES - 1)).expand(NUM_CLASSES, -1).clone()
    p.scatter_(0, cls[None], conf[None])
    return p[None, :, None, :]


def one_image(n: int = 1000, seed: int = 0, truth_where_paths_differ: int = 2):
    """A (1, n) image: F_T (and the fusion) predict road (0) everywhere with a random confidence in
    [0.6, 0.95]; F_S is F_T's twin except on the first 30%, where it says sidewalk (1) at 0.5 and the
    truth is `truth_where_paths_differ` (road elsewhere). So max P_T is uninformative, and M_consis is
    1 exactly where the paths agree."""
    g = torch.Generator().manual_seed(seed)
    conf = 0.6 + 0.35 * torch.rand(n, generator=g)
    p_t = peaked(torch.zeros(n, dtype=torch.long), conf)
    differ = int(0.3 * n)
    p_s = p_t.clone()
    p_s[..., :differ] = peaked(torch.ones(differ, dtype=torch.long), torch.full((differ,), 0.5))
    label = np.zeros((1, n), dtype=np.uint8)
    label[0, :differ] = truth_where_paths_differ
    return p_t, p_s, label


def test_consistency_ranks_the_disagreeing_wrong_pixels_last():
    d = PseudoDiagnostics(torch.full((NUM_CLASSES,), 0.5), bins=100)
    d.update(*one_image())
    prec = d.precision_at_coverage(0.5)
    assert set(prec) == set(SCORES)
    # The wrong pixels are the disagreeing 30%: keeping the top half by consistency keeps none of them,
    # F_T's random confidence about 30% of them.
    for score in ("consis", "conf_soft", "conf_hard"):
        assert prec[score]["road"] == pytest.approx(1.0), score
    assert 0.6 < prec["prob_t"]["road"] < 0.8
    # Fusing with even per-class weights is the plain fusion: ADPL ranks as M_prob does.
    assert prec["adpl"]["all"] == pytest.approx(prec["prob"]["all"])
    assert math.isnan(prec["prob"]["sky"])  # never predicted


def test_without_path_weights_adpl_is_left_out():
    d = PseudoDiagnostics(bins=10)
    d.update(*one_image(n=50))
    assert "adpl" not in d.precision_at_coverage(0.5) and "adpl" not in d.summary()["scores"]


def test_equal_coverage_keeps_the_same_number_of_pixels_for_every_score():
    d = PseudoDiagnostics(torch.full((NUM_CLASSES,), 0.5), bins=50)
    d.update(*one_image(seed=3))
    for q in (0.1, 0.37, 1.0):
        kept = {_top_fraction(d.total[i].sum(0), d.correct[i].sum(0), q)[0] for i in range(len(d.scores))}
        assert len({round(v, 6) for v in kept}) == 1
    assert d.precision_at_coverage(1.0)["prob"]["road"] == d.precision_at_coverage(1.0)["conf_soft"]["road"]
    with pytest.raises(ValueError, match="coverage"):
        d.precision_at_coverage(0.0)


def test_disagreement_counts_who_is_right_and_skips_ignored_pixels():
    p_t, p_s, label = one_image(n=100, truth_where_paths_differ=0)
    p_s[..., :10] = peaked(torch.ones(10, dtype=torch.long), torch.full((10,), 1.0))  # the fusion sides
    p_t[..., :10] = peaked(torch.zeros(10, dtype=torch.long), torch.full((10,), 0.4))  # with F_S here
    label[0, 90:] = IGNORE_INDEX
    d = PseudoDiagnostics()
    d.update(p_t, p_s, label)
    out = d.disagreement()
    assert d.pixels == 90
    assert out["disagree"] == pytest.approx(30 / 90)
    assert out["F_T right"] == 1.0 and out["F_S right"] == 0.0
    assert out["fused right"] == pytest.approx(20 / 30)
    assert out["neither path right"] == 0.0
    assert d.disagreement_by_class()["road"] == pytest.approx(30 / 90)


def test_adpl_weights_follow_each_paths_mean_confidence_per_class():
    p = peaked(torch.tensor([0, 0, 1]), torch.tensor([0.9, 0.7, 0.6]))
    sums, counts = class_confidence_sums(p, NUM_CLASSES)
    assert sums[0] == pytest.approx(1.6) and counts[0] == 2 and counts[1] == 1 and counts[2:].sum() == 0
    mean_t = torch.full((NUM_CLASSES,), float("nan"))
    mean_s = mean_t.clone()
    mean_t[0], mean_s[0], mean_s[1] = 0.9, 0.3, 0.6
    a = class_path_weights(mean_t, mean_s)
    assert a[0] == pytest.approx(0.75) and a[1] == 0.0 and a[2] == 0.5  # S alone; neither
    fused = fuse_per_class(p, p.roll(1, dims=1), a)
    assert torch.allclose(fused.sum(dim=1), torch.ones(1, 1, 3))
    only_t = fuse_per_class(p, p.roll(1, dims=1), torch.ones(NUM_CLASSES))
    assert torch.allclose(only_t, p)
