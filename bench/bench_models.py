"""Train-step time of DeepLabV2 variants on this machine (forward + backward + SGD, 19 classes).

The loss is cross-entropy at input resolution after bilinear upsampling of the logits, as in the
training loops. Prints a table of s/step and images/s; asserts nothing.

    python bench/bench_models.py                      # the default CPU sweep
    python bench/bench_models.py --backbone resnet18 --last-layer layer3 --output-stride 16 \
        --size 128x256 --batch 8 --steps 10
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from symda.models import build_deeplabv2, count_parameters, param_groups

# (backbone, last_layer, output_stride, "HxW", batch): the configurations the CPU default is chosen from.
DEFAULT_SWEEP = [
    ("resnet18", "layer3", 16, "64x128", 8),
    ("resnet18", "layer3", 16, "128x256", 8),
    ("resnet18", "layer3", 8, "64x128", 8),
    ("resnet18", "layer3", 8, "128x256", 8),
    ("resnet18", "layer4", 8, "64x128", 8),
    ("resnet18", "layer4", 8, "128x256", 8),
    ("resnet50", "layer4", 8, "64x128", 4),
]


def bench_one(
    backbone: str,
    last_layer: str,
    output_stride: int,
    size: str,
    batch: int,
    steps: int,
    warmup: int,
    bn_mode: str,
    num_classes: int = 19,
) -> dict:
    """Time ``steps`` SGD steps after ``warmup`` untimed ones; returns one table row."""
    h, w = (int(v) for v in size.lower().split("x"))
    torch.manual_seed(0)
    model = build_deeplabv2(
        backbone,
        num_classes=num_classes,
        output_stride=output_stride,
        last_layer=last_layer,
        bn_mode=bn_mode,
    ).train()
    opt = torch.optim.SGD(param_groups(model, lr=2.5e-4), lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, h, w)
    y = torch.randint(0, num_classes, (batch, h, w))
    y[:, :2] = 255  # some ignored pixels, as in real labels

    def step() -> None:
        logits = model(x)["main"]
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {
        "model": f"{backbone} {last_layer} OS{output_stride}",
        "params_M": count_parameters(model) / 1e6,
        "input": f"{h}x{w}",
        "batch": batch,
        "s_step": median,
        "s_step_min": times[0],
        "img_s": batch / median,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", help="run one configuration instead of the default sweep")
    p.add_argument("--last-layer", default="layer4", choices=["layer3", "layer4"])
    p.add_argument("--output-stride", type=int, default=8, choices=[8, 16])
    p.add_argument("--size", default="64x128", help="HxW input size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bn-mode", default="frozen", choices=["train", "frozen", "frozen_affine"],
                   help="backbone BatchNorm (default frozen; frozen_affine is the field's code)")  # fmt: skip
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    if args.backbone:
        sweep = [(args.backbone, args.last_layer, args.output_stride, args.size, args.batch)]
    else:
        sweep = DEFAULT_SWEEP
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.steps} timed steps (median), "
        f"bn_mode={args.bn_mode}"
    )
    header = f"{'model':<24} {'params':>8} {'input':>8} {'batch':>5} {'s/step':>8} {'min':>7} {'img/s':>7}"
    print(header)
    print("-" * len(header))
    for backbone, last_layer, os_, size, batch in sweep:
        r = bench_one(backbone, last_layer, os_, size, batch, args.steps, args.warmup, args.bn_mode)
        print(
            f"{r['model']:<24} {r['params_M']:>7.2f}M {r['input']:>8} {r['batch']:>5} "
            f"{r['s_step']:>8.3f} {r['s_step_min']:>7.3f} {r['img_s']:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
