"""No validator reads a target label: scrambled or deleted label files leave every score unchanged."""

import math

import numpy as np
import torch
from PIL import Image

from symda.adapt.networks import build_segmenter
from symda.config import load_config
from symda.data import build_dataset
from symda.evaluate import dev_score, unsupervised_scores
from symda.pipeline import pair_probabilities, score_network, source_holdout
from symda.pipeline.scoring import reference_probabilities
from symda.select import VALIDATORS


def setup(tiny_data, tmp_path):
    cfg = load_config(
        overrides={
            "data.source_root": str(tiny_data["source"]),
            "data.target_root": str(tiny_data["target"]),
            "data.source_size": [32, 64],
            "data.target_size": [32, 64],
            "data.source_holdout": 3,
            "synth.root": str(tmp_path / "synth"),
            "eval.batch_size": 3,
        }
    )
    torch.manual_seed(0)
    f_t, f_s = build_segmenter(cfg.model).eval(), build_segmenter(cfg.model).eval()
    reference = tmp_path / "reference.pt"  # a third network, for agreement_ref
    torch.save({"model": build_segmenter(cfg.model).state_dict()}, reference)
    cfg.select.reference = str(reference)
    return cfg, f_t, f_s


def scores(cfg, f_t, f_s, target_root):
    val = build_dataset(cfg.data, cfg.synth, "val")
    val_t = build_dataset(cfg.data, cfg.synth, "val", with_labels=False)  # V' stands in: the same images
    holdout = source_holdout(cfg, cfg.data.source_root)
    with torch.no_grad():
        return score_network(
            cfg, f_t, val, f_s, val_t, holdout, reference=reference_probabilities(cfg, torch.device("cpu"))
        )


def test_scrambled_or_missing_target_labels_change_no_validator(tiny_data, tmp_path):
    cfg, f_t, f_s = setup(tiny_data, tmp_path)
    before = scores(cfg, f_t, f_s, tiny_data["target"])
    assert list(before.validators) == list(VALIDATORS)
    assert all(math.isfinite(v) for v in before.validators.values()), before.validators

    # Scramble every target label file (train and val): the true mIoU moves, no validator does.
    rng = np.random.default_rng(0)
    labels = sorted(tiny_data["target"].glob("gtFine/*/*/*_labelIds.png"))
    assert labels
    for path in labels:
        shape = np.asarray(Image.open(path)).shape
        Image.fromarray(rng.choice([7, 8, 11, 21, 26], size=shape).astype(np.uint8)).save(path)
    after = scores(cfg, f_t, f_s, tiny_data["target"])
    assert after.single.miou != before.single.miou
    assert after.validators == before.validators

    # Delete them: the label-free path gives the same scores from the images alone.
    for path in labels:
        path.unlink()
    images = build_dataset(cfg.data, cfg.synth, "val", with_labels=False)
    holdout = source_holdout(cfg, cfg.data.source_root)
    from symda.evaluate import evaluate, segmenter_probabilities

    with torch.no_grad():
        source_miou = evaluate(segmenter_probabilities(f_t), holdout, cfg.eval.protocol, 3).miou
        dev = dev_score(f_t, holdout, images, 3)
        alone = unsupervised_scores(pair_probabilities(f_t, f_s, images), images, 3, segmenter_probabilities(f_t),
                                    source_miou, dev, reference_probabilities(cfg, torch.device("cpu")))  # fmt: skip
    assert alone == before.validators
