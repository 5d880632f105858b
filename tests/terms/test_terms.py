"""Loss terms: every term's file imports without torch, ADVENT's terms compute ADVENT's quantities, and
terms beside each other neither share metrics nor change each other's initial weights."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from symda.adapt.loop import SegmenterJob, output_levels, train_segmenter
from symda.adapt.step import TermContext
from symda.distributed import Runtime
from symda.terms import TERMS, adaptation_terms
from symda.terms.adversarial import AdversarialConfig, OutputAdversarial
from symda.terms.cross_entropy import SourceCrossEntropy
from symda.terms.entropy import Entropy, EntropyConfig, mean_entropy, self_information
from symda.terms.entropy_adversarial import EntropyAdversarial, EntropyAdversarialConfig
from tests.adapt.test_loop import setup


def test_term_files_import_without_torch():
    """The config reads every term's section, and results and analysis read configs without torch."""
    code = "import sys, symda.config, symda.terms; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize("name", sorted(TERMS))
def test_every_terms_defaults_are_valid_and_switch_it_on_only_when_published_as_default(name):
    term = TERMS[name]
    config = term.Config()
    assert term.check(config) == []
    assert term.enabled(config) == (name == "adversarial")  # only the method's own term is on by default
    assert term.method and term.stream in ("source", "pseudo", "target")


# ------------------------------------------------------------------ ADVENT's quantities (valeoai/ADVENT)


def advent_prob_2_entropy(prob: torch.Tensor) -> torch.Tensor:
    """advent/utils/func.py, as published."""
    n, c, h, w = prob.size()
    return -torch.mul(prob, torch.log2(prob + 1e-30)) / math.log2(c)


def advent_entropy_loss(v: torch.Tensor) -> torch.Tensor:
    """advent/utils/loss.py, as published."""
    n, c, h, w = v.size()
    return -torch.sum(torch.mul(v, torch.log2(v + 1e-30))) / (n * h * w * math.log2(c))


def test_self_information_and_mean_entropy_are_advents():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 19, 8, 16) * 3, dim=1)
    torch.testing.assert_close(self_information(p), advent_prob_2_entropy(p), rtol=0, atol=0)
    torch.testing.assert_close(mean_entropy(p), advent_entropy_loss(p), rtol=1e-6, atol=1e-7)
    uniform = torch.full((1, 19, 4, 4), 1 / 19)
    assert mean_entropy(uniform).item() == pytest.approx(1.0)  # normalised by log C
    one_hot = (
        torch.nn.functional.one_hot(torch.zeros(1, 4, 4, dtype=torch.long), 19).permute(0, 3, 1, 2).float()
    )
    assert mean_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)


def test_advents_discriminators_see_the_self_information_maps():
    p = torch.softmax(torch.randn(1, 19, 32, 64), dim=1)
    term = EntropyAdversarial(EntropyAdversarialConfig(lambda_main=0.001))
    torch.testing.assert_close(term.maps(p), advent_prob_2_entropy(p))
    assert OutputAdversarial(AdversarialConfig()).maps(p) is p  # AdaptSegNet's see the softmax itself


def test_minimising_the_entropy_term_lowers_the_target_entropy(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, steps=6, lr=0.02)
    images = torch.stack([data["target"][i]["image"] for i in range(4)])

    def entropy_now() -> float:
        model.eval()
        with torch.no_grad():
            out = model(images)["main"]
        model.train()
        return mean_entropy(torch.softmax(out, dim=1)).item()

    before = entropy_now()
    # The entropy term alone on the target stream (no source term to fight it): the entropy must fall.
    job = SegmenterJob(
        cfg, {"target": data["target"]}, (Entropy(EntropyConfig(lambda_main=1.0)),), tmp_path / "r"
    )
    train_segmenter(job, model, lambda *a, **k: None)
    assert entropy_now() < before


# --------------------------------------------------------------------------------- terms side by side


def test_three_adaptation_terms_run_together_each_with_its_own_metrics_and_state(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, aux_head=True)
    from symda.config import load_config

    adapt = load_config(overrides={"adapt.adversarial.d_channels": 8, "adapt.entropy.lambda_main": 0.01,
                                   "adapt.entropy_adversarial.lambda_main": 0.01,
                                   "adapt.entropy_adversarial.d_channels": 8}).adapt  # fmt: skip
    terms = adaptation_terms(adapt)
    assert [type(t).__name__ for t in terms] == ["OutputAdversarial", "Entropy", "EntropyAdversarial"]
    reports = []
    job = SegmenterJob(cfg, {"source": data["source"], "target": data["target"]}, (SourceCrossEntropy(), *terms),
                       tmp_path / "run")  # fmt: skip
    train_segmenter(job, model, lambda m, checkpoint=None: reports.append(m))
    keys = set(reports[0])
    assert {"loss_adv", "loss_adv_aux", "loss_d", "loss_d_aux", "d_acc", "loss_ent", "loss_ent_aux",
            "loss_adv_ent", "loss_adv_ent_aux", "loss_d_ent", "loss_d_ent_aux", "d_acc_ent"} <= keys  # fmt: skip
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["terms"]
    assert set(state) == {"OutputAdversarial", "EntropyAdversarial"}  # the entropy term keeps nothing


def test_a_terms_initial_weights_do_not_depend_on_which_other_terms_run():
    ctx = TermContext(Runtime(), 0, 19, ("main",))
    alone, beside = OutputAdversarial(AdversarialConfig()), OutputAdversarial(AdversarialConfig())
    alone.setup(ctx)
    EntropyAdversarial(EntropyAdversarialConfig(lambda_main=0.001)).setup(ctx)  # built first this time
    beside.setup(ctx)
    for a, b in zip(
        alone.adversary.discs["main"].parameters(), beside.adversary.discs["main"].parameters(), strict=True
    ):
        assert torch.equal(a, b)
    advent = EntropyAdversarial(EntropyAdversarialConfig(lambda_main=0.001))
    advent.setup(ctx)
    first = next(advent.adversary.discs["main"].parameters())
    assert not torch.equal(first, next(alone.adversary.discs["main"].parameters()))  # a stream of its own
    assert output_levels(torch.nn.Module()) == ("main",)


def test_a_terms_section_is_checked_when_the_config_loads():
    from symda.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"adapt\.entropy_adversarial\.gan_loss: 'wgan' is not one of"):
        load_config(overrides={"adapt.entropy_adversarial.gan_loss": "wgan"})
    with pytest.raises(ConfigError, match=r"adapt\.entropy\.lambda_aux: must be >= 0"):
        load_config(overrides={"adapt.entropy.lambda_aux": -1.0})
    with pytest.raises(ConfigError, match=r"adapt\.minent: unknown key"):
        load_config(overrides={"adapt.minent.lambda_main": 0.001})
    assert dataclasses.is_dataclass(load_config().adapt.entropy)
