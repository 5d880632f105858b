"""Peak memory of pseudo-labelling N and 10N target images: it must not grow with N.

Each size runs in a fresh process (so peaks do not mix) over a Cityscapes-layout folder of random
images at --size, with two random ResNet-18 DeepLab V2 paths (P_T, P_S), soft consistency and
per-class quantile thresholds (two streaming passes). Prints N, peak RSS and seconds; asserts nothing.

    python bench/bench_pseudo_memory.py [--n 40] [--size 128x256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(n: int, size: tuple[int, int], root: Path) -> None:
    import resource

    import numpy as np
    import torch
    from PIL import Image

    from symda.config import PseudoConfig
    from symda.data.cityscapes import list_cityscapes
    from symda.data.dataset import SegmentationDataset
    from symda.models import build_deeplabv2
    from symda.pipeline import pair_probabilities
    from symda.pseudo import generate_pseudo_labels

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    h, w = size
    for i in range(n):
        d = root / "target" / "leftImg8bit" / "train" / "city"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            d / f"city_{i:06d}_000019_leftImg8bit.png"
        )
    samples = list_cityscapes(root / "target", "train", with_labels=False)
    dataset = SegmentationDataset(samples, None, size=(h // 2, w // 2), with_labels=False)
    torch.manual_seed(0)
    f_t = build_deeplabv2("resnet18", last_layer="layer3").eval()
    f_s = build_deeplabv2("resnet18", last_layer="layer3").eval()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        generate_pseudo_labels(pair_probabilities(f_t, f_s, dataset), dataset, PseudoConfig(), root / "out",
                               root / "target", figure_images=0)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n": n,
                "peak_mb": peak / 1024,
                "before_mb": baseline / 1024,
                "seconds": time.perf_counter() - t0,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--size", default="128x256")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.child:
        child(args.child, size, args.root)
        return
    print(f"{'images':>7} {'peak RSS MB':>12} {'RSS before MB':>14} {'seconds':>8}")
    for n in (args.n, 10 * args.n):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--size", args.size, "--root", tmp],
                                 capture_output=True, text=True, check=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['n']:>7} {r['peak_mb']:>12.0f} {r['before_mb']:>14.0f} {r['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
