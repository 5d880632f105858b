"""Online pseudo labels (self_train.labels online): the mean teacher's labels chosen by the offline
policy's rule, beside a partner network on the same crops in its own style."""

from __future__ import annotations

import functools
import shutil

import pytest
import torch

from symda.adapt.loop import SegmenterJob, train_segmenter
from symda.adapt.networks import build_segmenter, load_segmenter
from symda.adapt.step import Step, TermContext
from symda.config import PseudoConfig
from symda.data.dataset import DatasetError, PairedDataset
from symda.distributed import Runtime
from symda.models.losses import IGNORE_INDEX, upsampled
from symda.pseudo.confidence import confidence_map
from symda.pseudo.thresholds import policy_labels, select
from symda.terms.cross_entropy import SourceCrossEntropy
from symda.terms.online_labels import OnlinePseudoLabels
from tests.adapt.test_loop import setup


def _term(model_cfg, partner_file, thresholds, **policy):
    partner = load_segmenter(model_cfg, partner_file) if partner_file else None
    rule = functools.partial(
        policy_labels, policy=PseudoConfig(**policy), thresholds=torch.tensor(thresholds)
    )
    return OnlinePseudoLabels(1.0, 0.99, "classmix", rule, partner)


@pytest.fixture
def paired(tiny_data, tmp_path):
    """(train config, model config, model, {"source", "target" paired with a copy of itself}, partner file)."""
    from symda.config import load_config
    from symda.data import build_dataset

    cfg, model, data = setup(tiny_data, tmp_path, steps=2)
    copy_root = tmp_path / "translated"
    shutil.copytree(tiny_data["target"], copy_root)  # T' stands in: the same images under another root
    full = load_config(overrides={"data.source_root": str(tiny_data["source"]), "data.target_root": str(copy_root),
                                  "data.source_size": [32, 64], "data.target_size": [32, 64], "data.crop_size": None,
                                  "synth.root": str(tmp_path / "synth")})  # fmt: skip
    translated = build_dataset(full.data, full.synth, "target")
    torch.manual_seed(1)
    partner = build_segmenter(full.model, load_weights=False)
    partner_file = tmp_path / "partner.pt"
    torch.save({"model": partner.state_dict()}, partner_file)
    streams = {"source": data["source"], "target": PairedDataset(data["target"], translated)}
    return cfg, full.model, model, streams, partner_file


def test_paired_items_share_their_crop_and_refuse_other_images(paired, tiny_data, tmp_path):
    _, _, _, streams, _ = paired
    item = streams["target"][(3, 12345)]
    assert torch.equal(item["image"], item["partner_image"])  # same pixels, same crop and flip
    assert "label" not in item  # the target role reads no labels
    target = streams["target"].primary
    fewer = type(target)(target.samples[:-1], None, target.size, with_labels=False, root=tmp_path / "x")
    with pytest.raises(DatasetError, match="does not hold the images"):
        PairedDataset(target, fewer)


def test_the_labels_are_the_offline_rule_on_the_teacher_and_the_partner(paired):
    cfg, model_cfg, model, streams, partner_file = paired
    batch = torch.utils.data.default_collate([streams["target"][(i, i)] for i in range(2)])
    batch["image"] = batch["image"] + 0.3 * torch.randn_like(batch["image"])  # T and T' differ
    step = Step(Runtime(), {"target": batch})
    thresholds = [0.5] * 19
    term = _term(model_cfg, partner_file, thresholds, consistency="soft", conf_weight=0.5)
    term.setup(TermContext(Runtime(), 0, 19, ("main",), model))
    labels, weights, metrics = term.teacher_labels(step)
    with torch.no_grad():  # the teacher in train mode (DACS), the partner in eval mode
        p_t = torch.softmax(upsampled(term.teacher(batch["image"])["main"], (32, 64)), 1)
        p_s = torch.softmax(upsampled(term.partner(batch["partner_image"])["main"], (32, 64)), 1)
    pred, m_conf, _, _ = confidence_map(p_t, p_s, 0.5, "soft", 0.5)
    expected = select(pred, m_conf, torch.tensor(thresholds)).long()
    assert torch.equal(labels, expected) and torch.equal(weights, torch.ones_like(weights))
    assert metrics["pseudo_kept"] == pytest.approx((expected != IGNORE_INDEX).float().mean().item())
    assert term.partner.training is False and not any(p.requires_grad for p in term.partner.parameters())


@pytest.mark.parametrize("threshold, kept", [(0.0, 1.0), (1.01, 0.0)])
def test_the_thresholds_decide_which_target_pixels_train(paired, threshold, kept):
    """All pixels pass a threshold of 0; none passes one above 1, and the term learns only the source
    pixels ClassMix pasted in."""
    cfg, model_cfg, model, streams, partner_file = paired
    term = _term(model_cfg, partner_file, [threshold] * 19)
    reports = []
    job = SegmenterJob(cfg, streams, (SourceCrossEntropy(), term), partner_file.parent / f"run{threshold}")
    train_segmenter(job, model, lambda m, checkpoint=None: reports.append(m))
    logged = [r for r in reports if "pseudo_kept" in r]
    assert logged and all(r["pseudo_kept"] == pytest.approx(kept) for r in logged)
    assert all(r["loss_pseudo"] >= 0 for r in logged)


def test_one_path_needs_no_partner(paired):
    cfg, model_cfg, model, streams, _ = paired
    term = _term(model_cfg, None, [0.0] * 19, consistency="none")
    streams = {"source": streams["source"], "target": streams["target"].primary}  # no partner image
    job = SegmenterJob(cfg, streams, (SourceCrossEntropy(), term), streams["source"].root.parent / "single")
    train_segmenter(job, model, lambda *a, **k: None)
