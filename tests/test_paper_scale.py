"""The paper's configuration end to end, at an eighth of the real sizes (bench/bench_paper_scale.py).

configs/gta5/full.yaml unchanged but for its paths, sizes and step counts: ResNet-101 caffe-style with
frozen-affine BN from a file in the field's init-file layout, multi-level discriminators, the paper's
StarGAN, pseudo labels, self-training of both paths and the fused evaluation, in one `symda run`.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_paper_config_runs_end_to_end_at_an_eighth_of_the_real_sizes(tmp_path):
    work = tmp_path / "ps"
    cmd = [sys.executable, "bench/bench_paper_scale.py", "--work", str(work), "--scale", "0.125",
           "--images", "2", "--steps", "1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = json.loads((work / "paper_scale.json").read_text())
    stages = {r["stage"]: r for r in table["stages"]}
    assert {"translate", "adapt", "pseudo", "self_train", "evaluate"} <= set(stages)
    assert all(r["seconds"] > 0 and r["peak_mb"] > 0 for r in stages.values())
    assert "| stage | seconds | peak resident MB |" in proc.stdout
    record = json.loads((work / "run" / "result.json").read_text())
    assert math.isfinite(record["miou"]) and math.isfinite(record["miou_fused"])
    assert record["model.resnet_style"] == "caffe" and record["model.bn_mode"] == "frozen_affine"
    # SynthCity at the real sizes' eighth: GTA5-layout 132x239, Cityscapes-layout 128x256; the
    # pseudo labels at the target labels' size.
    data = work / "data"
    assert Image.open(next((data / "gta5" / "images").glob("*.png"))).size == (239, 132)
    assert Image.open(next((data / "cityscapes" / "leftImg8bit" / "train").glob("*/*.png"))).size == (
        256,
        128,
    )
    label = next((work / "artifacts" / "pseudo").glob("*/data/gtFine/train/*/*_labelIds.png"))
    assert np.asarray(Image.open(label)).shape == (128, 256)
