"""DEV: the control-variate risk as its authors compute it, density ratios that follow the target, and
a finite score from a network."""

import math

import numpy as np
import pytest
import torch

from symda.evaluate import dev_score
from symda.select import dev as D


def test_dev_risk_is_the_authors_control_variate_estimate():
    rng = np.random.default_rng(0)
    w, loss = rng.gamma(2.0, 0.5, 200), rng.random(200)
    wl = w * loss
    eta = -np.cov(wl, w)[0, 1] / np.var(w, ddof=1)
    assert D.dev_risk(w, loss) == pytest.approx(wl.mean() + eta * w.mean() - eta)
    # Equal weights (no shift): eta is 0 and DEV is the plain mean loss.
    assert D.dev_risk(np.ones(5), np.arange(5.0)) == pytest.approx(2.0)
    assert math.isnan(D.dev_risk(np.ones(1), np.ones(1)))


def test_density_ratios_grow_towards_the_target_and_average_about_one_on_the_source():
    gen = torch.Generator().manual_seed(0)
    source = torch.randn(600, 2, generator=gen)
    target = torch.randn(300, 2, generator=gen) + torch.tensor([1.5, 0.0])
    validation = torch.randn(400, 2, generator=gen)
    w = D.density_ratios(source, target, validation)
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    assert np.corrcoef(rank(validation[:, 0].numpy()), rank(w))[0, 1] > 0.9  # p_t / p_s rises along the shift
    assert 0.5 < w.mean() < 2.0  # E_s[p_t / p_s] = 1
    near_target = D.density_ratios(source, target, torch.tensor([[1.5, 0.0], [-1.5, 0.0]]))
    assert near_target[0] > 1 > near_target[1]


def test_dev_score_of_a_network_is_finite_and_needs_two_held_out_images(tiny_data, tmp_path):
    from symda.adapt.networks import build_segmenter
    from symda.config import load_config
    from symda.data import build_dataset
    from symda.pipeline import source_holdout

    cfg = load_config(overrides={
        "data.source_root": str(tiny_data["source"]), "data.target_root": str(tiny_data["target"]),
        "data.source_size": [32, 64], "data.target_size": [32, 64], "data.source_holdout": 3,
        "synth.root": str(tmp_path / "synth"),
    })  # fmt: skip
    torch.manual_seed(0)
    net = build_segmenter(cfg.model).eval()
    holdout = source_holdout(cfg, cfg.data.source_root)
    val = build_dataset(cfg.data, cfg.synth, "val", with_labels=False)
    score = dev_score(net, holdout, val, batch_size=2)
    assert math.isfinite(score) and score < 0  # minus a risk (cross-entropies are positive)
    assert dev_score(net, holdout, val, batch_size=3) == pytest.approx(
        score, rel=1e-4
    )  # batching (float order only)
    one = torch.utils.data.Subset(holdout, [0])
    one.with_labels = True
    assert math.isnan(dev_score(net, one, val))
