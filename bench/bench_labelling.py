"""What a sweep trial spends outside its training steps: pseudo labels of T and one stage evaluation.

On the main job's SynthCity (configs/synthcity/quick.yaml: 400 target train images at 128x256, 100
val images, the network at 64x128) with two random networks standing in for F_T and F_S, one
torch thread (as each trial has): seconds of generate_pseudo_labels with class_quantile thresholds
(two passes) and with a global tau (one), and of one evaluation beside a fixed partner (val mIoU,
fused, every validator; the partner's probabilities already kept, as from a trial's second
evaluation on). --repo times another checkout of symda instead (e.g. a `git worktree` of an older
commit), so that a before/after ratio is measured side by side:

    python bench/bench_labelling.py --synth-root /tmp/mj/run-0/data            # this checkout
    python bench/bench_labelling.py --synth-root /tmp/mj/run-0/data --repo /tmp/old

--synth-root: a quick.yaml SynthCity (the main job writes one under its synth.root); generated
there when missing. Prints one JSON line; asserts nothing.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synth-root", type=Path, required=True)
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = p.parse_args()
    sys.path.insert(0, str(args.repo))

    import torch

    try:
        from symda.adapt.networks import build_segmenter
    except ImportError:  # a checkout from before the loss terms (--repo): it lived in symda.models.build
        from symda.models.build import build_segmenter
    from symda.config import PseudoConfig, load_config
    from symda.data import build_dataset, ensure_synthcity
    from symda.pipeline import pair_probabilities, probability_memo, score_network
    from symda.pseudo import generate_pseudo_labels

    torch.set_num_threads(1)
    cfg = load_config(
        args.repo / "configs" / "synthcity" / "quick.yaml", {"synth.root": str(args.synth_root)}
    )
    ensure_synthcity(cfg.data, cfg.synth)
    target, val = build_dataset(cfg.data, cfg.synth, "target"), build_dataset(cfg.data, cfg.synth, "val")
    torch.manual_seed(0)
    f_t, f_s = build_segmenter(cfg.model).eval(), build_segmenter(cfg.model).eval()
    # Older checkouts label without keeping pass 1's maps (no keep_mb).
    keep = (
        {"keep_mb": cfg.data.cache_mb}
        if "keep_mb" in inspect.signature(generate_pseudo_labels).parameters
        else {}
    )
    seconds = {}
    with torch.no_grad():
        for name, pseudo in (("class_quantile", PseudoConfig(threshold="class_quantile")),
                             ("global", PseudoConfig(threshold="global", tau=0.9))):  # fmt: skip
            pair = pair_probabilities(f_t, f_s, target, probability_memo(target, cfg, 2))
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                generate_pseudo_labels(pair, target, pseudo, Path(tmp) / "labels", Path(cfg.synth.root) / "cityscapes",
                                       figure_images=0, **keep)  # fmt: skip
                seconds[f"pseudo_{name}_s"] = time.perf_counter() - t0
        memo = probability_memo(val, cfg, 1)
        score_network(cfg, f_t, val, f_s, val, None, memo)  # the partner's probabilities, kept
        t0 = time.perf_counter()
        score_network(cfg, f_t, val, f_s, val, None, memo)
        seconds["evaluation_s"] = time.perf_counter() - t0
    print(json.dumps({"repo": str(args.repo), "target_images": len(target), "val_images": len(val),
                      **{k: round(v, 2) for k, v in seconds.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
