"""SynthCity generation speed (images/s, both domains together), and how its domains compare with a real
Cityscapes frame. Prints numbers; asserts nothing.

    python bench/bench_synthcity.py [--size 128x256] [--n 600] [--workers 2] [--preset v2]
    python bench/bench_synthcity.py --look docs/results/v2/synthcity_look.png --real CITYSCAPES/leftImg8bit

--look: mean saturation, luminance-histogram distance to the real frames, radially averaged power
spectrum slope and edge density of source, target and real Cityscapes frames (every
*_leftImg8bit.png under --real: the repository ships none, Cityscapes' licence forbids it), as a
markdown table, and a picture of source | target | real side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from symda.data.synthcity import generate_synthcity
from symda.data.synthcity.statistics import image_statistics


def look(root: Path, out_png: Path, real_dir: Path, n: int = 24) -> None:
    """Print the statistics table of the dataset at `root` against the real frames under `real_dir`
    (Cityscapes' *_leftImg8bit.png, any depth); write the picture."""
    real_paths = sorted(real_dir.rglob("*_leftImg8bit.png"))[:n]
    if not real_paths:
        raise SystemExit(f"--real {real_dir}: no *_leftImg8bit.png under it")
    real = [np.asarray(Image.open(p).convert("RGB")) for p in real_paths]
    size = (real[0].shape[1], real[0].shape[0])
    src = [
        np.asarray(Image.open(p).convert("RGB").resize(size))
        for p in sorted((root / "gta5/images").glob("*.png"))[:n]
    ]
    tgt = [np.asarray(Image.open(p).convert("RGB").resize(size))
           for p in sorted((root / "cityscapes/leftImg8bit/train").rglob("*.png"))[:n]]  # fmt: skip
    print(f"\n| images ({len(src)} each, at {size[0]}x{size[1]}) | mean saturation | luminance histogram distance "
          "to real | power-spectrum slope | edge density |\n| --- | --- | --- | --- | --- |")  # fmt: skip
    for name, images in (
        ("SynthCity source", src),
        ("SynthCity target", tgt),
        ("real Cityscapes frame", real),
    ):
        s = image_statistics(images, real)
        print(f"| {name} | {s['mean_saturation']:.3f} | {s['luminance_hist_distance']:.3f} | "
              f"{s['spectrum_slope']:.2f} | {s['edge_density']:.3f} |")  # fmt: skip
    gap = 4
    rows = [np.concatenate([src[k], np.full((size[1], gap, 3), 255, np.uint8), tgt[k],
                            np.full((size[1], gap, 3), 255, np.uint8), real[k % len(real)]], axis=1)
            for k in range(min(3, len(src), len(tgt)))]  # fmt: skip
    grid = np.concatenate(
        sum(([r, np.full((gap, r.shape[1], 3), 255, np.uint8)] for r in rows), [])[:-1], axis=0
    )
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 14), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (0, 14))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(("SynthCity source (GTA5 layout)", "SynthCity target (Cityscapes layout)",
                              "real Cityscapes frame")):  # fmt: skip
        draw.text((2 + k * (size[0] + gap), 1), text, fill=(0, 0, 0))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png)
    print(f"\npicture: {out_png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="128x256")
    p.add_argument(
        "--n", type=int, default=600, help="images in all (half source, a third target, the rest val)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--preset", default="v2", choices=("v1", "v2"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--look", type=Path, help="also print image statistics against real frames (--real); picture here"
    )
    p.add_argument(
        "--real", type=Path, help="a folder of real Cityscapes frames (*_leftImg8bit.png) for --look"
    )
    args = p.parse_args()
    if args.look and not args.real:
        p.error("--look needs --real DIR: a folder of real Cityscapes frames")
    h, w = (int(v) for v in args.size.split("x"))
    n_source, n_target = args.n // 2, args.n // 3
    n_val = args.n - n_source - n_target
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = generate_synthcity(Path(tmp) / "synthcity", seed=args.seed, size=(h, w), n_source=n_source,
                                  n_target=n_target, n_val=n_val, workers=args.workers, progress=False,
                                  preset=args.preset)  # fmt: skip
        dt = time.perf_counter() - t0
        print(f"SynthCity {args.preset} {h}x{w}: {args.n} images ({n_source} source, {n_target} target train, "
              f"{n_val} val) in {dt:.1f} s = {args.n / dt:.1f} images/s with {args.workers} workers")  # fmt: skip
        if args.look:
            look(root, args.look, args.real)


if __name__ == "__main__":
    main()
