import math

import pytest
import torch

from symda.pseudo import confidence_map, consistency_map, fuse, prob_map


def one_hot_mix(n: int, c: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (1, c, 1, n) distributions: p_t one-hot on class 0, p_s moved a fraction alpha to class 1."""
    p_t = torch.zeros(1, c, 1, n)
    p_t[:, 0] = 1.0
    p_s = p_t.clone()
    p_s[:, 0] = 1.0 - alpha
    p_s[:, 1] = alpha
    return p_t, p_s


def test_fuse_and_prob_map():
    p_t = torch.softmax(torch.randn(2, 5, 3, 4), dim=1)
    p_s = torch.softmax(torch.randn(2, 5, 3, 4), dim=1)
    p = fuse(p_t, p_s, 0.3)
    assert torch.allclose(p, 0.3 * p_t + 0.7 * p_s)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, 3, 4))
    assert prob_map(p).shape == (2, 3, 4)
    assert torch.equal(prob_map(p), p.max(dim=1).values)


def test_soft_consistency_identical_is_one_and_falls_monotonically():
    p = torch.softmax(3 * torch.randn(2, 19, 4, 4), dim=1)
    assert torch.allclose(consistency_map(p, p, "soft"), torch.ones(2, 4, 4), atol=1e-5)
    values = []
    for alpha in (0.0, 0.1, 0.3, 0.5, 0.8, 1.0):
        p_t, p_s = one_hot_mix(1, 4, alpha)
        values.append(float(consistency_map(p_t, p_s, "soft")))
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(0.0, abs=1e-6)  # disjoint supports: JS = ln 2


def test_soft_consistency_matches_js_formula():
    p_t = torch.tensor([0.7, 0.2, 0.1]).view(1, 3, 1, 1)
    p_s = torch.tensor([0.1, 0.3, 0.6]).view(1, 3, 1, 1)
    m = 0.5 * (p_t + p_s)
    kl = lambda a, b: float((a * (a / b).log()).sum())  # noqa: E731
    js = 0.5 * kl(p_t, m) + 0.5 * kl(p_s, m)
    assert float(consistency_map(p_t, p_s, "soft")) == pytest.approx(1 - js / math.log(2), abs=1e-6)


def test_hard_consistency_hand_case():
    # 1x3x1x3: pixel 0 both class 0; pixel 1 class 1 vs class 2; pixel 2 both class 2.
    p_t = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]).T.reshape(1, 3, 1, 3)
    p_s = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.1, 0.1, 0.8]]).T.reshape(1, 3, 1, 3)
    assert consistency_map(p_t, p_s, "hard").tolist() == [[[1.0, 0.0, 1.0]]]


def test_confidence_map_variants():
    p_t = torch.softmax(torch.randn(2, 4, 3, 3), dim=1)
    p_s = torch.softmax(torch.randn(2, 4, 3, 3), dim=1)
    pred, m_conf, m_prob, m_consis = confidence_map(p_t, None, 0.5, "soft", 0.5)
    assert m_consis is None and torch.equal(m_conf, m_prob) and torch.equal(pred, p_t.argmax(1))
    assert pred.dtype == torch.int64 and pred.shape == (2, 3, 3)

    p = fuse(p_t, p_s, 0.4)
    pred, m_conf, m_prob, m_consis = confidence_map(p_t, p_s, 0.4, "none", 0.5)
    assert m_consis is None and torch.equal(pred, p.argmax(1)) and torch.allclose(m_conf, p.max(1).values)

    pred, m_conf, m_prob, m_consis = confidence_map(p_t, p_s, 0.4, "soft", 0.25)
    assert torch.allclose(m_consis, consistency_map(p_t, p_s, "soft"))
    assert torch.allclose(m_conf, 0.25 * m_prob + 0.75 * m_consis)
    with pytest.raises(ValueError, match="consistency"):
        confidence_map(p_t, p_s, 0.5, "median", 0.5)
