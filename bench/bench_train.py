"""CPU throughput of the default segmentation model: a train step and evaluation (images/s).

Uses the configured model and input size (defaults, or --config/--set), synthetic inputs, and the
training loop's own loss and optimiser. Prints numbers; asserts nothing.

    python bench/bench_train.py [--config CFG] [--set model.backbone=resnet50] [--steps 20]
    python bench/bench_train.py --threads 1 --channels-last --bf16    # this CPU's other options
    python bench/bench_train.py --compile    # torch.compile: its first step (compile) and steady s/step

"first step" is the first train step's time (with --compile: mostly compilation); with the eager run's
s/step it says after how many steps compilation pays back.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from symda.adapt.loop import make_optimizer
from symda.adapt.networks import build_segmenter
from symda.config import load_config
from symda.data.labels import NUM_CLASSES
from symda.evaluate import upsample_logits
from symda.models.losses import segmentation_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true", help="NHWC model and inputs")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward passes")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (nn.Module.compile)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    model = build_segmenter(cfg.model, load_weights=False)
    h, w = cfg.data.crop_size or cfg.data.source_size
    n = cfg.train.batch_size
    x = torch.randn(n, 3, h, w)
    y = torch.randint(0, NUM_CLASSES, (n, h, w))
    opt = make_optimizer(model, cfg.train)
    if args.channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )

    if args.compile:
        model.compile()

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    model.train()
    t_first = time.perf_counter()
    for i in range(args.warmup + args.steps):
        if i == 1:
            first_s = time.perf_counter() - t_first
        if i == args.warmup:
            t0 = time.perf_counter()
        with autocast():
            out = model(x)
        loss = segmentation_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s = (time.perf_counter() - t0) / args.steps

    # Evaluation: forward at the model's input size, upsample to label resolution (synth.height x width).
    model.eval()
    eh, ew = cfg.data.target_size
    xe = torch.randn(cfg.eval.batch_size, 3, eh, ew)
    if args.channels_last:
        xe = xe.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast():
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                t0 = time.perf_counter()
            upsample_logits(model(xe)["main"], (cfg.synth.height, cfg.synth.width)).argmax(1)
    eval_s = (time.perf_counter() - t0) / args.steps  # with --compile: after eval's own compile in warm-up

    m = cfg.model
    print(f"model: DeepLabV2 {m.backbone} to {m.last_layer}, OS{m.output_stride}; threads {args.threads}"
          f"{'; channels-last' if args.channels_last else ''}{'; bf16 autocast' if args.bf16 else ''}"
          f"{'; torch.compile' if args.compile else ''}")  # fmt: skip
    print(f"first train step: {first_s:.2f} s")
    print(f"{'what':<12}{'input':>10}{'batch':>7}{'s/step':>9}{'images/s':>10}")
    print(f"{'train step':<12}{f'{h}x{w}':>10}{n:>7}{train_s:>9.3f}{n / train_s:>10.1f}")
    print(
        f"{'evaluate':<12}{f'{eh}x{ew}':>10}{cfg.eval.batch_size:>7}{eval_s:>9.3f}{cfg.eval.batch_size / eval_s:>10.1f}"
    )


if __name__ == "__main__":
    main()
