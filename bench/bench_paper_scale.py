"""The paper's setting end to end on this CPU: configs/gta5/full.yaml at the real datasets' sizes.

`symda dry-run --config configs/gta5/full.yaml` (symda/dry_run.py): SynthCity generated at GTA5's and
Cityscapes' real sizes (source 1052x1914, target 1024x2048), a handful of images, a random
initial-weights file in the field's DeepLab layout (Scale.-prefixed keys, a 21-class head that the
loader leaves out) where the config's file is missing, every stage cut to a few steps: the paper's StarGAN on its 256x256 crops,
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the data, the store and the run")
    p.add_argument("--scale", type=float, default=1.0, help="size factor (1 = the real sizes)")
    p.add_argument("--images", type=int, default=4, help="images per domain (val: half)")
    p.add_argument("--steps", type=int, default=2, help="steps of every training stage")
    args = p.parse_args()
    work = args.work.resolve()
    # `symda dry-run` does the changes (generated data at the real sizes, a field-layout stand-in for
    # the init file, a few steps a stage): the same command a user runs before copying the datasets.
    cmd = [sys.executable, "-m", "symda", "dry-run", "--config", str(CONFIG), "--work", str(work),
           "--scale", str(args.scale), "--images", str(args.images), "--steps", str(args.steps)]  # fmt: skip
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
