"""The paper's GPU setting (configs/gta5/full.yaml), stage by stage, fp32 against bf16: step time,
images/s and peak GPU memory of the translator, adversarial adaptation and self-training loops.

It runs the real loops (symda.translate.train_translator, symda.adapt.train_segmenter) on one GPU
(Runtime(cuda)) at the paper's sizes, on a small SynthCity generated at those sizes (GTA5 and
Cityscapes layouts, so the real loaders and transforms run too). Weights are random (no downloads):
speed and memory do not depend on them. Self-training reads the target's labels as its "pseudo
labels": the same files and the same work as real pseudo labels.

    python bench/bench_gpu.py --out bench_gpu_out          # on a GPU machine
    python bench/bench_gpu.py --out o --precisions bf16 --compile --batch 2 --profile   # the step profiled
    python bench/bench_gpu.py --tiny --out /tmp/b          # a CPU smoke test of the script itself

--profile adds, per stage and variant: a torch.profiler trace of the first steps (trace-*.json, open
it in https://ui.perfetto.dev; ops-*.txt: the op table by device time), the host-device
synchronisations per step (counted with torch.cuda.set_sync_debug_mode), the arithmetic of a step
(torch.utils.flop_counter) and the MFU it gives against --peak-tflops.

Prints a Markdown table and writes results.json and table.md to --out after every stage, so a run
cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symda.adapt.networks import build_segmenter  # noqa: E402
from symda.config import load_config  # noqa: E402
from symda.data import build_dataset, ensure_synthcity  # noqa: E402
from symda.distributed import Runtime  # noqa: E402

TINY = [
    "model.backbone=resnet18", "model.last_layer=layer3", "data.source_size=[64,128]",
    "data.target_size=[64,128]", "translate.g_conv_dim=8", "translate.g_repeat_num=1",
    "translate.d_conv_dim=8", "translate.d_repeat_num=3", "translate.load_size=[64,128]",
    "translate.image_size=[32,32]", "translate.batch_size=4", "synth.height=64", "synth.width=128",
]  # fmt: skip


def timed_report(times: list[float], images: list[float]):
    """A report callback that records the loop's images/s, and wall time between calls."""
    last = [time.perf_counter()]

    def report(metrics: dict, checkpoint=None) -> None:
        now = time.perf_counter()
        if "images_per_s" in metrics:
            times.append(now - last[0])
            images.append(metrics["images_per_s"])
        last[0] = now

    return report


class InMemory:
    """A dataset whose items are `k` decoded items of `dataset`, repeated: the loops then time the
    networks alone (with a real data pipeline, 16 CPU cores cannot decode 720x1280 PNGs fast enough)."""

    def __init__(self, dataset, k: int = 8) -> None:
        self.dataset, self.k, self.cache = dataset, k, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        if index % self.k not in self.cache:
            self.cache[index % self.k] = self.dataset[(index % self.k, seed)]
        return self.cache[index % self.k]

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def datasets(cfg_data, synth, roles: dict[str, tuple[str, bool]], in_memory: bool) -> dict:
    """{name: dataset of (role, with_labels)}, optionally InMemory."""
    out = {n: build_dataset(cfg_data, synth, role, with_labels=labels) for n, (role, labels) in roles.items()}
    return {n: InMemory(d) if in_memory else d for n, d in out.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_translate(cfg, runtime: Runtime, steps: int, work: Path, in_memory: bool) -> dict:
    from symda.translate import train_translator

    t = dataclasses.replace(cfg.translate, generator_steps=steps, log_every=max(steps // 6, 1), sample_every=10**9,
                            checkpoint_every=10**9, decay_start=1.0)  # fmt: skip
    view = dataclasses.replace(
        cfg.data, source_size=t.load_size, target_size=t.load_size, crop_size=t.image_size
    )
    ds = datasets(view, cfg.synth, {"source": ("source", False), "target": ("target", False)}, in_memory)
    times, ips = [], []
    workers = 0 if in_memory else cfg.data.num_workers
    train_translator(t, ds["source"], ds["target"], work, timed_report(times, ips), seed=0, num_workers=workers,
                     runtime=runtime)  # fmt: skip
    per_step = [dt / t.log_every for dt in times[1:]] or [dt / t.log_every for dt in times]
    return {"s_per_g_step": statistics.median(per_step), "images_per_s": statistics.median(ips[1:] or ips),
            "batch": t.batch_size, "crop": list(t.image_size), "g_steps": steps}  # fmt: skip


def run_segmenter(cfg, runtime: Runtime, steps: int, work: Path, self_train: bool, in_memory: bool) -> dict:
    from symda.adapt.loop import SegmenterJob, train_segmenter
    from symda.pipeline import stage_terms

    train = dataclasses.replace(cfg.train, steps=steps, log_every=max(steps // 6, 1), checkpoint_every=10**9,
                                eval_every=0)  # fmt: skip
    roles = {"source": ("source", True), "target": ("target", False), "pseudo": ("target_labelled", True)}
    ds = datasets(cfg.data, cfg.synth, roles, in_memory)
    # Self-training reads all three streams, as a pipeline round does (stage_terms of round 1).
    terms = stage_terms(cfg, 1 if self_train else 0)
    data = {s: ds[s] for s in ("source", "target", "pseudo") if any(s in (t.stream, *t.reads) for t in terms)}
    torch.manual_seed(0)
    model = build_segmenter(cfg.model)
    times, ips = [], []
    job = SegmenterJob(train, data, terms, work, num_workers=cfg.data.num_workers)
    train_segmenter(job, model, timed_report(times, ips), runtime)
    per_step = [dt / train.log_every for dt in times[1:]] or [dt / train.log_every for dt in times]
    return {"s_per_step": statistics.median(per_step), "images_per_s": statistics.median(ips[1:] or ips),
            "batch": train.batch_size, "steps": steps}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/gta5/full.yaml"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=200, help="segmenter steps per stage and precision")
    p.add_argument("--g-steps", type=int, default=60, help="translator G steps (x n_critic D steps)")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--channels-last", action="store_true", help="also run bf16 + channels-last")
    p.add_argument("--stages", default="translate,adapt,self_train")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms per shape")
    p.add_argument(
        "--in-memory", action="store_true", help="time the networks alone: 8 decoded items repeated"
    )
    p.add_argument("--tiny", action="store_true", help="small shapes: a CPU smoke test of this script")
    p.add_argument("--compile", action="store_true", help="also run each precision with torch.compile")
    p.add_argument("--batch", type=int, default=1, help="segmenter images per domain and step (default 1)")
    p.add_argument("--profile", action="store_true", help="trace, syncs per step, FLOP and MFU (see above)")
    p.add_argument("--peak-tflops", type=float, default=786.0,
                   help="the device's dense bf16 rate for MFU (default: 786, measured on the H100s)")  # fmt: skip
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "symda_bench_gpu_data")
    args = p.parse_args()

    h, w = (64, 128) if args.tiny else (720, 1280)
    # BatchNorm as the field's code trains it (affine frozen, batch statistics): frozen running
    # statistics of random weights (mean 0, var 1) would blow activations up to NaN within a few steps.
    overrides = [
        "data.source_root=", "data.target_root=", f"synth.root={args.data}", f"synth.height={h}",
        f"synth.width={w}", "synth.n_source=48", "synth.n_target=48", "synth.n_val=4", "model.weights=none",
        "model.allow_random_init=true", "model.bn_mode=frozen_affine", "scale.num_workers=0", f"train.batch_size={args.batch}", "data.num_workers=6",
    ] + (TINY if args.tiny else [])  # fmt: skip
    cfg = load_config(args.config, overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    if not (args.data / "GTA5").exists() and not any(args.data.glob("*")):
        from symda.data.synthcity import generate_synthcity

        generate_synthcity(args.data, seed=0, size=(h, w), n_source=48, n_target=48, n_val=4,
                           workers=max(1, min(12, (os.cpu_count() or 2) - 2)), progress=False)  # fmt: skip
    ensure_synthcity(cfg.data, cfg.synth, progress=False)
    print(f"SynthCity {h}x{w} ready in {time.perf_counter() - t0:.0f} s", flush=True)

    variants = [(prec, False, False) for prec in args.precisions.split(",")]
    if args.channels_last:
        variants.append(("bf16", True, False))
    if args.compile:
        variants += [(prec, False, True) for prec in args.precisions.split(",")]
    rows: list[dict] = []
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "config": args.config,
            "data": "in memory (networks alone)" if args.in_memory else f"loaders, {cfg.data.num_workers} workers"}  # fmt: skip
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    info["cudnn_benchmark"] = args.cudnn_benchmark
    info["peak_tflops"] = args.peak_tflops
    for stage in args.stages.split(","):
        for prec, cl, compiled in variants:
            runtime = Runtime(device=device, precision=prec, channels_last=cl, compile=compiled)
            name = prec + ("+channels_last" if cl else "") + ("+compile" if compiled else "")
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            t1 = time.perf_counter()
            with tempfile.TemporaryDirectory() as work:
                try:
                    if stage == "translate":
                        row = run_translate(cfg, runtime, args.g_steps, Path(work), args.in_memory)
                    else:
                        row = run_segmenter(
                            cfg, runtime, args.steps, Path(work), stage == "self_train", args.in_memory
                        )
                    if args.profile and "error" not in row:
                        row.update(profile_stage(cfg, runtime, stage, Path(work), args, f"{stage}-{name}"))
                except Exception as err:  # record and go on: one failing variant must not lose the others
                    row = {"error": f"{type(err).__name__}: {err}"}
            sync(device)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            row.update(stage=stage, precision=name, peak_gib=peak, wall_s=time.perf_counter() - t1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            (args.out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
            (args.out / "table.md").write_text(table(rows, info))
    print(table(rows, info))
    return 0


def profile_stage(cfg, runtime: Runtime, stage: str, work: Path, args, tag: str) -> dict:
    """A few more steps of `stage` under torch.profiler, counting host-device syncs; FLOP of a step.

    Returns syncs_per_step, tflop_per_step and mfu (at the s/step just measured: filled in by the
    caller's row), and writes trace-<tag>.json and ops-<tag>.txt to args.out.
    """
    import warnings

    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    steps = 6 if stage != "translate" else 2
    run = (lambda n: run_translate(cfg, runtime, n, work / f"p{n}", args.in_memory)) if stage == "translate" else (
        lambda n: run_segmenter(cfg, runtime, n, work / f"p{n}", stage == "self_train", args.in_memory))  # fmt: skip
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if runtime.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run(steps)
    prof.export_chrome_trace(str(args.out / f"trace-{tag}.json"))
    sort = "cuda_time_total" if runtime.device.type == "cuda" else "cpu_time_total"
    (args.out / f"ops-{tag}.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=30))
    syncs = float("nan")
    if runtime.device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run(steps)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        n_sync = sum("synchroniz" in str(w.message) for w in caught)
        syncs = n_sync / steps  # includes the loop's set-up and final evaluation-free end: an upper bound
    with FlopCounterMode(display=False) as counter:
        run(1)
    return {"syncs_per_step": syncs, "tflop_per_step": counter.get_total_flops() / 1e12}


def table(rows: list[dict], info: dict) -> str:
    lines = [f"device: {info['device']}, torch {info['torch']}, config {info['config']}, data: {info.get('data')}, "
             f"cudnn.benchmark: {info.get('cudnn_benchmark')}", "",
             "| stage | precision | s/step | images/s | peak GPU memory (GiB) | batch | steps timed | syncs/step | TFLOP/step | MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['precision']} | error: {r['error'][:80]} | | | | |")
            continue
        s = r.get("s_per_step", r.get("s_per_g_step"))
        steps = r.get("steps", r.get("g_steps"))
        tflop = r.get("tflop_per_step", float("nan"))
        mfu = tflop / s / info.get("peak_tflops", float("nan"))
        lines.append(f"| {r['stage']} | {r['precision']} | {s:.3f} | {r['images_per_s']:.1f} | "
                     f"{r['peak_gib']:.1f} | {r['batch']} | {steps} | {r.get('syncs_per_step', float('nan')):.1f} | "
                     f"{tflop:.2f} | {mfu:.1%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
