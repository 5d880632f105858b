"""Each validator's value on hand-built predictions, and invariants every one of them keeps."""

import math

import numpy as np
import pytest
import torch

from symda.select import VALIDATORS
from symda.select import validators as V

C = 4


def one_hot(classes: list[list[int]], sharp: float = 1.0) -> torch.Tensor:
    """(1, C, h, w) probabilities: `sharp` on the given class of each pixel, the rest spread evenly."""
    lab = torch.tensor(classes)
    p = torch.full((C, *lab.shape), (1 - sharp) / (C - 1))
    p.scatter_(0, lab[None], sharp)
    return p[None]


def summary(p, partner=None, augmented=None, indices=(0,), mixed=None) -> V.TargetPredictions:
    pred = V.TargetPredictions(C)
    pred.add(p, list(indices), partner, augmented, mixed)
    return pred


def test_entropy_of_certain_and_uniform_predictions():
    assert V.entropy(summary(one_hot([[0, 1], [2, 3]]))) == pytest.approx(0.0, abs=1e-6)
    assert V.entropy(summary(torch.full((1, C, 2, 2), 1 / C))) == pytest.approx(-1.0)


def test_info_max_rewards_confident_and_diverse():
    # Certain and all four classes used: H(marginal) = 1, mean H = 0.
    assert V.info_max(summary(one_hot([[0, 1], [2, 3]]))) == pytest.approx(1.0, abs=1e-6)
    # Certain but one class everywhere: the marginal has no entropy either.
    assert V.info_max(summary(one_hot([[2, 2], [2, 2]]))) == pytest.approx(0.0, abs=1e-6)
    # Uniform everywhere: H(marginal) = 1 but mean H = 1.
    assert V.info_max(summary(torch.full((1, C, 2, 2), 1 / C))) == pytest.approx(0.0, abs=1e-6)


def test_agreement_and_its_class_balanced_form():
    mine = one_hot([[0, 0, 0, 1]])
    theirs = one_hot([[0, 0, 0, 2]])
    pred = summary(mine, partner=theirs)
    assert V.agreement(pred) == pytest.approx(3 / 4)
    # Classes 0 (3/3), 1 (0/1) and 2 (0/1) are predicted by one or the other: mean IoU 1/3.
    assert V.agreement_miou(pred) == pytest.approx(1 / 3)
    assert math.isnan(V.agreement(summary(mine))) and math.isnan(V.agreement_miou(summary(mine)))


def test_partner_at_another_resolution_is_resized():
    pred = summary(one_hot([[1, 1], [1, 1]]), partner=one_hot([[1] * 4] * 4))
    assert V.agreement(pred) == 1.0


def test_aug_agreement_counts_pixels_of_each_augmented_copy():
    plain = one_hot([[0, 1, 2, 3]])
    same, changed = one_hot([[0, 1, 2, 3]]), one_hot([[0, 1, 0, 0]])
    assert V.aug_agreement(summary(plain, augmented=[same, changed])) == pytest.approx((4 + 2) / 8)
    assert math.isnan(V.aug_agreement(summary(plain)))


def test_augmented_views_map_back_to_the_image_frame():
    images = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    (flipped, unflip), (small, _) = V.augmented_views(images)
    assert torch.equal(unflip(flipped), images)
    assert small.shape[-2:] == (6, 9)


def test_snd_is_higher_for_tight_clusters():
    # Two tight clusters of identical vectors: each sample's neighbourhood is its cluster (high entropy
    # over many equal neighbours), against vectors all pointing different ways.
    torch.manual_seed(0)
    clustered = one_hot([[0] * 10 + [1] * 10])
    spread = torch.softmax(torch.randn(1, C, 1, 20) * 5, dim=1)
    assert V.snd(summary(clustered)) > V.snd(summary(spread))
    # 20 pixels (< 100 per image) are all sampled; each has 9 identical neighbours at similarity 20 and
    # 10 orthogonal ones at 0: its softmax is ~1/9 on each of the 9, entropy ln 9.
    assert V.snd(summary(clustered)) == pytest.approx(math.log(9), rel=1e-6)


def test_snd_equals_its_definition_whatever_the_chunk():
    # The definition on the whole matrix: entropy of log_softmax(cos / T) over the other samples.
    torch.manual_seed(2)
    pred = summary(torch.softmax(torch.randn(3, C, 6, 7) * 4, dim=1), indices=(0, 1, 2))
    x = torch.nn.functional.normalize(torch.cat(pred.snd_samples).double(), dim=1)
    sim = x @ x.T / V.SND_TEMPERATURE
    sim.fill_diagonal_(-math.inf)
    logp = torch.log_softmax(sim, dim=1)
    expected = float(-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(dim=1).mean())
    for chunk in (1, 7, 50, 1000):  # 126 samples: chunks that do and do not divide them
        assert V.snd(pred, chunk=chunk) == pytest.approx(expected, rel=1e-5)


def test_snd_samples_100_pixels_per_image_seeded_by_the_image_index():
    p = torch.softmax(torch.randn(2, C, 16, 16), dim=1)
    a = summary(p, indices=(5, 6))
    assert sum(len(s) for s in a.snd_samples) == 2 * V.SND_PIXELS_PER_IMAGE
    b = summary(p, indices=(5, 6))
    assert V.snd(a) == V.snd(b)
    assert V.snd(summary(p, indices=(7, 8))) != V.snd(a)


def test_scores_do_not_depend_on_batching():
    torch.manual_seed(1)
    p = torch.softmax(torch.randn(6, C, 8, 8) * 3, dim=1)
    q = torch.softmax(torch.randn(6, C, 8, 8) * 3, dim=1)
    ref = torch.softmax(torch.randn(6, C, 4, 4) * 3, dim=1)
    flip = [torch.softmax(torch.randn(6, C, 8, 8), dim=1)]
    mix = (
        torch.softmax(torch.randn(6, C, 8, 8) * 3, dim=1),
        torch.softmax(torch.randn(6, C, 8, 8) * 3, dim=1),
    )
    whole = V.TargetPredictions(C)
    whole.add(p, list(range(6)), q, flip, mix, ref)
    parts = V.TargetPredictions(C)
    for lo, hi in ((0, 1), (1, 4), (4, 6)):
        parts.add(p[lo:hi], list(range(lo, hi)), q[lo:hi], [f[lo:hi] for f in flip],
                  (mix[0][lo:hi], mix[1][lo:hi]), ref[lo:hi])  # fmt: skip
    a, b = V.validator_scores(whole, 12.5, -0.7), V.validator_scores(parts, 12.5, -0.7)
    assert list(a) == list(VALIDATORS)
    for name in VALIDATORS:
        assert math.isfinite(a[name]), name
        assert a[name] == pytest.approx(b[name], rel=1e-6), name


def test_reference_agreement_is_agreement_against_the_reference_not_the_partner():
    own, partner, reference = one_hot([[0, 1, 2, 3]]), one_hot([[0, 1, 2, 3]]), one_hot([[0, 1, 0, 0]])
    pred = V.TargetPredictions(C)
    pred.add(own, [0], partner, reference=reference)
    assert V.agreement(pred) == 1.0 and V.agreement_ref(pred) == 0.5
    assert V.agreement_ref_miou(pred) == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)


def test_validator_scores_name_every_validator_and_nan_without_inputs():
    scores = V.validator_scores(summary(one_hot([[0, 1]])))
    assert list(scores) == list(VALIDATORS)
    for name in (
        "agreement",
        "agreement_miou",
        "agreement_ref",
        "agreement_ref_miou",
        "aug_agreement",
        "mixval",
        "source_miou",
        "dev",
    ):
        assert math.isnan(scores[name]), name
    for name in ("entropy", "info_max", "snd"):
        assert np.isfinite(scores[name]), name


def test_wrong_class_count_is_an_error():
    with pytest.raises(ValueError, match="5 classes, expected 4"):
        V.TargetPredictions(C).add(torch.full((1, 5, 2, 2), 0.2), [0])


def test_mixval_scores_the_mix_against_the_dominant_image_split_by_the_partners_class():
    own = one_hot([[0, 0, 1, 2]])
    partner = one_hot([[0, 0, 3, 3]])  # pixels 0-1 intra (same class), 2-3 inter
    on_mix = one_hot([[0, 3, 1, 3]])  # intra: 1 of 2 right; inter: 1 of 2 right (the partner's 3 wins one)
    assert V.mixval(summary(own, mixed=(on_mix, partner))) == pytest.approx(0.5)
    on_mix = one_hot([[0, 0, 3, 3]])  # intra 2/2, inter 0/2: the partner took over
    assert V.mixval(summary(own, mixed=(on_mix, partner))) == pytest.approx(0.5)
    assert V.mixval(summary(own, mixed=(own, partner))) == pytest.approx(1.0)
    only_intra = summary(own, mixed=(own, own))  # no inter pixels: the intra accuracy alone
    assert only_intra.mix_pixels == [4, 0] and V.mixval(only_intra) == pytest.approx(1.0)


def test_mixval_partners_pair_neighbours_and_never_leave_the_set():
    assert [V.mixval_partner(i, 6) for i in range(6)] == [1, 0, 3, 2, 5, 4]
    assert [V.mixval_partner(i, 5) for i in range(5)] == [1, 0, 3, 2, 3]
    assert V.mixval_partner(0, 1) == 0
    x, y = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.allclose(V.mixed_images(x, y), torch.full((1, 3, 2, 2), 1 - V.MIXVAL_LAMBDA))
