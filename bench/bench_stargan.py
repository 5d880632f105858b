"""Train-step time of the StarGAN translator on this machine: one D step and one G step, as the loop runs them.

A D step is the critic loss (real, fake, domain CE, gradient penalty) + backward + Adam; a G step is the
generator loss (adversarial, domain CE, reconstruction) + backward + Adam. One generator update of the
loop costs n_critic D steps + 1 G step. Prints a table; asserts nothing.

    python bench/bench_stargan.py                        # the default TranslateConfig (CPU size)
    python bench/bench_stargan.py --paper                # also the paper's 64/6/64/6 nets at a small image
    python bench/bench_stargan.py --g-conv-dim 64 --g-repeat-num 6 --d-conv-dim 64 --d-repeat-num 6 \
        --size 128x128 --batch 16 --steps 3
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from symda.config import TranslateConfig
from symda.models import count_parameters
from symda.translate.train import build_translator, d_step, g_step


def bench_one(cfg: TranslateConfig, steps: int, warmup: int, device: str) -> dict:
    """Mean seconds of a D step and a G step over `steps` timed repetitions after `warmup` untimed ones."""
    torch.manual_seed(0)
    G, D = build_translator(cfg)
    G.to(device).train()
    D.to(device).train()
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    d_opt = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    n = cfg.batch_size
    x = torch.rand(n, 3, *cfg.image_size, device=device) * 2 - 1
    c = torch.arange(n, device=device) % 2

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_d() -> None:
        loss, _ = d_step(G, D, x, c, cfg, torch.rand(n, 1, 1, 1, device=device))
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        d_opt.step()

    def one_g() -> None:
        loss, _ = g_step(G, D, x, c, cfg)
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        g_opt.step()

    times = {}
    for name, fn in (("d", one_d), ("g", one_g)):
        for _ in range(warmup):
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        times[name] = (time.perf_counter() - t0) / steps
    update = cfg.n_critic * times["d"] + times["g"]
    return {
        "nets": f"G{cfg.g_conv_dim}/{cfg.g_repeat_num} D{cfg.d_conv_dim}/{cfg.d_repeat_num}",
        "params": f"{count_parameters(G) / 1e6:.2f}M+{count_parameters(D) / 1e6:.2f}M",
        "size": f"{cfg.image_size[0]}x{cfg.image_size[1]}",
        "batch": n,
        "d_s": times["d"],
        "g_s": times["g"],
        "img_s": n / (times["d"] + times["g"]),
        "update_s": update,
        "run_h": update * cfg.generator_steps / 3600,
    }


def main() -> None:
    default = TranslateConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--g-conv-dim", type=int, default=default.g_conv_dim)
    p.add_argument("--g-repeat-num", type=int, default=default.g_repeat_num)
    p.add_argument("--d-conv-dim", type=int, default=default.d_conv_dim)
    p.add_argument("--d-repeat-num", type=int, default=default.d_repeat_num)
    p.add_argument("--size", default="x".join(map(str, default.image_size)), help="HxW training crop")
    p.add_argument("--batch", type=int, default=default.batch_size)
    p.add_argument("--n-critic", type=int, default=default.n_critic)
    p.add_argument(
        "--train-steps",
        type=int,
        default=default.generator_steps,
        help="G updates, for the run-time estimate",
    )
    p.add_argument("--steps", type=int, default=5, help="timed repetitions of each step")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--paper", action="store_true", help="also time the paper's nets (64/6, 64/6, batch 16)")
    p.add_argument("--paper-size", default="128x128", help="HxW for --paper (the paper trains at 256x256)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    def size(text: str) -> tuple[int, int]:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w

    cfg = dataclasses.replace(
        default,
        g_conv_dim=args.g_conv_dim,
        g_repeat_num=args.g_repeat_num,
        d_conv_dim=args.d_conv_dim,
        d_repeat_num=args.d_repeat_num,
        image_size=size(args.size),
        batch_size=args.batch,
        n_critic=args.n_critic,
        generator_steps=args.train_steps,
    )
    configs = [cfg]
    if args.paper:
        configs.append(
            dataclasses.replace(
                cfg, g_conv_dim=64, g_repeat_num=6, d_conv_dim=64, d_repeat_num=6, batch_size=16,
                image_size=size(args.paper_size),
            )
        )  # fmt: skip
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    header = f"{'nets':<18}{'params':>14}{'size':>9}{'batch':>6}{'D s':>8}{'G s':>8}{'img/s':>8}"
    print(header + f"{'update s':>10}{'run h':>8}  (update = n_critic D + 1 G; run = train-steps updates)")
    for c in configs:
        r = bench_one(c, args.steps, args.warmup, args.device)
        print(
            f"{r['nets']:<18}{r['params']:>14}{r['size']:>9}{r['batch']:>6}{r['d_s']:>8.3f}{r['g_s']:>8.3f}"
            f"{r['img_s']:>8.1f}{r['update_s']:>10.3f}{r['run_h']:>8.2f}"
        )


if __name__ == "__main__":
    main()
