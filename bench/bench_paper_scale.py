"""The paper's setting end to end on this CPU: configs/gta5/full.yaml at the real datasets' sizes.

SynthCity is generated at GTA5's and Cityscapes' real sizes (source 1052x1914, target 1024x2048), a
handful of images; a random initial-weights file is written in the field's DeepLab layout
(Scale.-prefixed keys, a 21-class head that the loader leaves out) and `symda run --config
configs/gta5/full.yaml` runs every stage cut to a few steps: the paper's StarGAN on its 256x256 crops,
translation of every image at full size, adaptation of the ResNet-101 F_T and F_S at 720x1280 /
512x1024 with the multi-level discriminators, pseudo labels (the network at 512x1024, the maps at
the labels' 1024x2048), self-training, and the fused evaluation at full label resolution. Prints
seconds and peak resident memory per stage (the run's own record: `seconds.*`, `peak_mb.*`).

    python bench/bench_paper_scale.py --work /tmp/ps             # the real sizes (about 15 min on 2 cores)
    python bench/bench_paper_scale.py --work /tmp/ps --scale 0.125 --images 2   # the CI test's version

--scale multiplies every size (images, network inputs, the translator's crop, at least 64 pixels,
which its 6-layer critic needs). Writes DIR/run (the run folder) and DIR/paper_scale.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gta5" / "full.yaml"
SIZES = {"source_image": (1052, 1914), "target_image": (1024, 2048), "source_input": (720, 1280),
         "target_input": (512, 1024), "crop": (256, 256), "load": (512, 1024)}  # fmt: skip


def scaled(size: tuple[int, int], scale: float, least: int = 8) -> tuple[int, int]:
    return tuple(max(least, round(v * scale)) for v in size)


def write_field_init_file(path: Path, head_classes: int = 21) -> Path:
    """Random ResNet-101 weights under the field's init-file names: "Scale."-prefixed torchvision-named
    backbone tensors, BN statistics of a trained network's magnitude, a single-level ASPP head "layer5"
    for another class count (as in DeepLab_resnet_pretrained_init-f81d91e8.pth)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    sd = {k: v for k, v in torchvision.models.resnet101(weights=None).state_dict().items()
          if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}  # fmt: skip
    for i in range(4):
        sd[f"layer5.conv2d_list.{i}.weight"] = torch.randn(head_classes, 2048, 3, 3) * 0.01
        sd[f"layer5.conv2d_list.{i}.bias"] = torch.zeros(head_classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"Scale." + k: v for k, v in sd.items()}, path)
    return path


def overrides(work: Path, scale: float, images: int, steps: int, weights: Path) -> list[str]:
    src, tgt = scaled(SIZES["source_image"], scale), scaled(SIZES["target_image"], scale)
    src_in, tgt_in = scaled(SIZES["source_input"], scale), scaled(SIZES["target_input"], scale)
    crop, load = scaled(SIZES["crop"], scale, least=64), scaled(SIZES["load"], scale, least=64)
    sets = {
        "name": "paper_scale", "artifacts_dir": work / "artifacts",
        # SynthCity in place of the datasets, at their real sizes
        "data.source_root": "", "data.target_root": "", "synth.root": work / "data",
        "synth.height": tgt[0], "synth.width": tgt[1], "synth.source_height": src[0], "synth.source_width": src[1],
        "synth.n_source": images, "synth.n_target": images, "synth.n_val": max(1, images // 2),
        "data.source_size": list(src_in), "data.target_size": list(tgt_in), "data.num_workers": 0,
        "model.weights": weights,
        # every stage cut to a few steps, one process on the CPU
        "train.steps": steps, "train.batch_size": 1, "train.log_every": 1, "train.eval_every": 0,
        "train.checkpoint_every": steps, "self_train.steps": steps,
        "translate.generator_steps": steps, "translate.load_size": list(load), "translate.image_size": list(crop),
        "translate.log_every": 1, "translate.sample_every": steps, "translate.checkpoint_every": steps,
        "scale.use_gpu": False, "scale.num_workers": 0,
    }  # fmt: skip
    return [f"{k}={v}" for k, v in sets.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the data, the store and the run")
    p.add_argument("--scale", type=float, default=1.0, help="size factor (1 = the real sizes)")
    p.add_argument("--images", type=int, default=4, help="images per domain (val: half)")
    p.add_argument("--steps", type=int, default=2, help="steps of every training stage")
    args = p.parse_args()
    work = args.work.resolve()
    weights = write_field_init_file(work / "pretrained" / "DeepLab_resnet_pretrained_init-f81d91e8.pth")
    cmd = [sys.executable, "-m", "symda", "run", "--config", str(CONFIG), "--out", str(work / "run")]
    for o in overrides(work, args.scale, args.images, args.steps, weights):
        cmd += ["--set", o]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(f"symda run failed (exit {proc.returncode}) after {wall:.0f} s", file=sys.stderr)
        return proc.returncode
    record = json.loads((work / "run" / "result.json").read_text())
    stages = [k.split(".", 1)[1] for k in record if k.startswith("seconds.")]
    rows = [
        {"stage": st, "seconds": record[f"seconds.{st}"], "peak_mb": record.get(f"peak_mb.{st}")}
        for st in stages
    ]
    print(f"\nconfigs/gta5/full.yaml at scale {args.scale}, {args.images} images a domain, {args.steps} steps a stage: "
          f"{wall:.0f} s wall, mIoU {record['miou']:.2f} single / {record['miou_fused']:.2f} fused (random weights)")  # fmt: skip
    print("| stage | seconds | peak resident MB |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['stage']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |")
    out = {"scale": args.scale, "images": args.images, "steps": args.steps, "wall_s": wall, "stages": rows}
    (work / "paper_scale.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
