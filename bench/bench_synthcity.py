"""SynthCity generation speed (images/s, both domains together). Prints numbers; asserts nothing.

python bench/bench_synthcity.py [--size 128x256] [--n 600] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from symda.data.synthcity import generate_synthcity


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="128x256")
    p.add_argument(
        "--n", type=int, default=600, help="images in all (half source, a third target, the rest val)"
    )
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    n_source, n_target = args.n // 2, args.n // 3
    n_val = args.n - n_source - n_target
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_synthcity(Path(tmp) / "synthcity", seed=0, size=(h, w), n_source=n_source, n_target=n_target,
                           n_val=n_val, workers=args.workers, progress=False)  # fmt: skip
        dt = time.perf_counter() - t0
    print(f"SynthCity {h}x{w}: {args.n} images ({n_source} source, {n_target} target train, {n_val} val) "
          f"in {dt:.1f} s = {args.n / dt:.1f} images/s with {args.workers} workers")  # fmt: skip


if __name__ == "__main__":
    main()
