"""What Ray costs a stage loop: the same adversarial-adaptation loop (a) bare, (b) inside a Tune trial,
(c) inside a 1-worker TorchTrainer (symda.distributed.run_stage), steps/s of each and their ratios.

The loop is `train_segmenter` with the adversarial term (stage 2 of the method: labelled source +
unlabelled target, one output discriminator) on a small SynthCity in the real layouts, at the main
job's sizes (configs/synthcity/quick.yaml). Throughput is the loop's own: images/s of its log windows
after the first (warm-up) one, measured inside whatever runs it; the start-up of each mode (Ray's
processes, the trial's or the worker group's set-up) is printed apart. The modes run interleaved,
--repeats times, and the medians are compared, so machine noise hits them alike.

    python bench/bench_ray_overhead.py                      # 2 threads per loop, 3 repeats
    python bench/bench_ray_overhead.py --threads 1 --steps 60

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symda.config import load_config  # noqa: E402


def make_loop(overrides: list[str], steps: int, log_every: int, work: Path):
    """loop(runtime, report): `steps` adversarial steps of F_T on SynthCity (generated on first use)."""

    def loop(runtime, report) -> None:
        import torch

        from symda.adapt.loop import SegmenterJob, train_segmenter
        from symda.adapt.networks import build_segmenter
        from symda.data import build_dataset, ensure_synthcity
        from symda.pipeline import stage_terms

        cfg = load_config(str(ROOT / "configs/synthcity/quick.yaml"), overrides)
        ensure_synthcity(cfg.data, cfg.synth, progress=False)
        train = dataclasses.replace(cfg.train, steps=steps, log_every=log_every, eval_every=0,
                                    checkpoint_every=10**9)  # fmt: skip
        data = {role: build_dataset(cfg.data, cfg.synth, role) for role in ("source", "target")}
        torch.manual_seed(0)
        job = SegmenterJob(train, data, stage_terms(cfg, 0), Path(tempfile.mkdtemp(dir=work)))
        train_segmenter(job, build_segmenter(cfg.model), report, runtime)

    return loop


def steps_per_s(records: list[dict], images_per_step: int) -> float:
    """Median steps/s of the loop's log windows, the first (warm-up) one left out."""
    ips = [r["images_per_s"] for r in records if "images_per_s" in r]
    return statistics.median(ips[1:] or ips) / images_per_step


def bare(loop, threads: int) -> list[dict]:
    import torch

    from symda.distributed import Runtime

    torch.set_num_threads(threads)
    records: list[dict] = []
    loop(Runtime(), lambda metrics, checkpoint=None: records.append(dict(metrics)))
    return records


def in_tune_trial(loop, threads: int, storage: Path) -> list[dict]:
    """The loop as a sweep runs it: a Tune function trainable holding `threads` CPUs."""
    from ray import tune

    def trainable(config: dict) -> None:
        import torch

        from symda.distributed import Runtime

        torch.set_num_threads(threads)  # what symda.sweeps.trial.run_trial does
        loop(Runtime(), lambda metrics, checkpoint=None: tune.report(
            {k: v for k, v in metrics.items() if isinstance(v, int | float)}))  # fmt: skip

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"CPU": threads}),
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0),
    )
    result = tuner.fit()[0]
    return result.metrics_dataframe.to_dict("records")


def in_torch_trainer(loop, threads: int, storage: Path) -> list[dict]:
    """The loop as `scale.num_workers: 1` runs it: symda.distributed.run_stage, a 1-worker TorchTrainer."""
    from symda.config import ScaleConfig
    from symda.distributed import run_stage

    records: list[dict] = []
    work = Path(tempfile.mkdtemp(dir=storage))
    run_stage(loop, ScaleConfig(num_workers=1, cpus_per_worker=threads), work,
              lambda metrics, checkpoint=None: records.append(dict(metrics)), storage / "train")  # fmt: skip
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (= CPUs) of the loop (default 2)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="override of quick.yaml")
    args = p.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    overrides = [f"synth.root={work / 'synthcity'}", "synth.n_source=64", "synth.n_target=64", "synth.n_val=8",
                 *args.overrides]  # fmt: skip
    cfg = load_config(str(ROOT / "configs/synthcity/quick.yaml"), overrides)
    images_per_step = 2 * cfg.train.batch_size  # a source and a target batch
    loop = make_loop(overrides, args.steps, args.log_every, work)
    bare(make_loop(overrides, 2 * args.log_every, args.log_every, work), args.threads)  # data + warm caches

    t0 = time.perf_counter()
    ray.init(
        num_cpus=max(args.threads, 2), include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    ray_start = time.perf_counter() - t0
    modes = {
        "bare loop": lambda: bare(loop, args.threads),
        "Tune trial": lambda: in_tune_trial(loop, args.threads, work / "tune"),
        "TorchTrainer, 1 worker": lambda: in_torch_trainer(loop, args.threads, work),
    }
    rates: dict[str, list[float]] = {m: [] for m in modes}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.repeats):
        for name, run in modes.items():
            t0 = time.perf_counter()
            records = run()
            walls[name].append(time.perf_counter() - t0)
            rates[name].append(steps_per_s(records, images_per_step))
            print(
                f"repeat {r}: {name:<24}{rates[name][-1]:>8.3f} steps/s  {walls[name][-1]:>6.1f} s wall",
                flush=True,
            )
    ray.shutdown()

    base = statistics.median(rates["bare loop"])
    base_wall = statistics.median(walls["bare loop"])
    print(f"\n{args.steps} adversarial steps (batch {cfg.train.batch_size} source + {cfg.train.batch_size} target, "
          f"{cfg.data.source_size[0]}x{cfg.data.source_size[1]}), {args.threads} threads, median of {args.repeats}; "
          f"ray.init {ray_start:.1f} s")  # fmt: skip
    print(
        "| mode | steps/s | vs bare | wall s | start-up s (wall - steps / rate) |\n| --- | --- | --- | --- | --- |"
    )
    for name in modes:
        rate, wall = statistics.median(rates[name]), statistics.median(walls[name])
        startup = wall - args.steps / rate
        print(f"| {name} | {rate:.3f} | {rate / base:.3f} | {wall:.1f} | {startup:.1f} |")
    print(f"(bare loop start-up, data and model set-up: {base_wall - args.steps / base:.1f} s)")


if __name__ == "__main__":
    main()
