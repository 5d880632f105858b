"""`symda dry-run`'s config: generated data at the real sizes, every stage a few steps, the weights checked."""

from pathlib import Path

import pytest
import yaml

from symda.config import load_config
from symda.dry_run import REAL_IMAGE_SIZES, dry_run_config, dry_run_overrides

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_paper_config_keeps_its_method_and_changes_only_data_steps_and_placement(tmp_path):
    config = REPO_ROOT / "configs" / "gta5" / "full.yaml"
    real = load_config(config)
    dry, note = dry_run_config(config, [], tmp_path, scale=0.25, images=3, steps=2)
    # SynthCity at a quarter of GTA5's and Cityscapes' sizes, the inputs scaled alike, under the work folder.
    assert (dry.synth.source_height, dry.synth.source_width) == (263, 478)
    assert (dry.synth.height, dry.synth.width) == (256, 512)
    assert dry.data.source_size == (180, 320) and dry.data.target_size == (128, 256)
    assert dry.translate.image_size == (64, 64)  # at least 64: the 6-layer critic
    assert dry.synth.root == str(tmp_path.resolve() / "data") and dry.data.source_root == ""
    assert dry.train.steps == dry.self_train.steps == dry.translate.generator_steps == 2
    assert dry.scale.num_workers == 0 and not dry.scale.use_gpu
    # The method is the config's: network, BN, discriminators, losses, thresholds.
    for section in ("model", "adapt", "pseudo"):
        ours, theirs = getattr(dry, section).__dict__, getattr(real, section).__dict__
        assert {k: v for k, v in ours.items() if k != "weights"} == {
            k: v for k, v in theirs.items() if k != "weights"
        }
    # Its weights file is not here: a stand-in in the field's layout, said so.
    assert "is not there yet" in note and Path(dry.model.weights).is_file()
    assert Path(dry.model.weights).name == Path(real.model.weights).name


def test_an_existing_weights_file_is_the_one_loaded(tmp_path):
    weights = tmp_path / "mine.pth"
    weights.write_bytes(b"not checked here: the run loads it strictly")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"weights": str(weights)}}))
    dry, note = dry_run_config(config, ["train.lr=0.001"], tmp_path / "work")
    assert dry.model.weights == str(weights) and "the config's file" in note and dry.train.lr == 0.001


def test_only_gta5_layout_sources_can_be_generated(tmp_path):
    with pytest.raises(ValueError, match="data.source: 'synthia'"):
        dry_run_overrides(load_config(overrides={"data.source": "synthia"}), tmp_path)
    assert set(REAL_IMAGE_SIZES) == {"gta5", "cityscapes"}
