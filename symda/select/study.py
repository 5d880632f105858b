"""The validator study's runner: (variant x seed) runs as one Ray Tune grid, and their points.

A study file (configs/study/validators.yaml) names a base config, fixed overrides ("{seed}" in a value
is the seed), seeds, and variants (overrides of what users tune). Each cell is one `symda run`
(pipeline.run_experiment) into <out>/<variant>-s<seed>; a cell whose result.json exists is not run
again, and cells of one seed share every upstream artifact through the store. Every segmenter stage
records its evaluations (val mIoU and every validator) in its artifact; `collect_points` reads F_T's
of every finished cell into one table: one point per (network artifact, step), so a round-0 network
that several variants share counts once. analysis/validator_study.py turns it into the study's table.

Imports Ray and torch only inside functions (Ray workers import `study_trial` by name).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from symda.config import ConfigError, ExperimentConfig, load_config
from symda.select import VALIDATORS

POINTS_FILE = "points.csv"


@dataclass(frozen=True)
class StudySpec:
    """A study file, validated: every cell's config loads."""

    path: Path
    config: Path  # base experiment YAML (absolute)
    overrides: dict[str, Any]  # "{seed}" in a string value is the cell's seed
    seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]]

    def cell_config(self, variant: str, seed: int, paths: dict[str, str] | None = None) -> ExperimentConfig:
        """The config of one cell: base + overrides (seed filled in) + the variant + seed keys."""
        fixed = {k: v.format(seed=seed) if isinstance(v, str) else v for k, v in self.overrides.items()}
        return load_config(self.config, {**fixed, **(paths or {}), **self.variants[variant],
                                         "seed": seed, "synth.seed": seed, "name": f"{variant}-s{seed}"})  # fmt: skip


def load_study(path: Path) -> StudySpec:
    """Read and check a study file; ConfigError naming the file and the key at fault."""
    from symda.sweeps.space import REPO_ROOT

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    data = yaml.safe_load(path.read_text()) or {}
    allowed = {"config", "overrides", "seeds", "variants"}
    if unknown := set(data) - allowed:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} (valid: {sorted(allowed)})")
    for key in ("config", "variants"):
        if key not in data:
            raise ConfigError(f"{path}: {key}: missing")
    config = Path(data["config"])
    config = config if config.is_absolute() else REPO_ROOT / config
    variants = data["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"{path}: variants: expected a mapping of name -> overrides")
    for name, over in variants.items():
        if not isinstance(over, dict):
            raise ConfigError(f"{path}: variants.{name}: expected a mapping of dotted keys, got {over!r}")
    spec = StudySpec(path, config, dict(data.get("overrides") or {}), tuple(data.get("seeds") or (0,)),
                     {str(k): dict(v) for k, v in variants.items()})  # fmt: skip
    for name in spec.variants:
        try:
            spec.cell_config(name, spec.seeds[0])
        except ConfigError as err:
            raise ConfigError(f"{path}: variants.{name}: {err}") from None
    return spec


def cell_dir(out: Path, variant: str, seed: int) -> Path:
    return Path(out) / f"{variant}-s{seed}"


@dataclass(frozen=True)
class StudySetup:
    """What every cell shares; passed to `study_trial` through tune.with_parameters."""

    spec: StudySpec
    out: str  # absolute
    paths: dict[str, str]  # the config's relative paths made absolute (Tune runs trials elsewhere)
    threads: int


def study_trial(config: dict[str, Any], setup: StudySetup) -> None:
    """The Tune function trainable: one cell's `symda run` unless finished; reports its final mIoU."""
    from ray import tune

    from symda.sweeps.ablation import log_report

    variant, seed = config["variant"], int(config["seed"])
    out = cell_dir(Path(setup.out), variant, seed)
    skipped = (out / "result.json").is_file()
    if not skipped:
        import torch

        from symda.pipeline import run_experiment

        torch.set_num_threads(setup.threads)
        run_experiment(setup.spec.cell_config(variant, seed, setup.paths), out, log_report(out / "log.jsonl"))
    record = json.loads((out / "result.json").read_text())
    tune.report({"miou": record["miou"], "skipped": skipped})


def run_study(spec: StudySpec, out: Path, max_concurrent: int = 2, address: str | None = None) -> list[str]:
    """Run every cell not finished yet (one CPU thread each, `max_concurrent` at a time); return the
    errors of failed cells as "<variant>-s<seed>: <exception line>"."""
    from symda.data import ensure_synthcity
    from symda.sweeps.ablation import grid_errors
    from symda.sweeps.driver import absolute_paths, check_cluster, connect, trial_resources

    out = Path(out).resolve()
    probe = spec.cell_config(next(iter(spec.variants)), spec.seeds[0])
    paths = {k: v for k, v in absolute_paths(probe).items() if k != "synth.root"}  # synth.root has {seed}
    cells = [(v, s) for s in spec.seeds for v in spec.variants]
    todo = [(v, s) for v, s in cells if not (cell_dir(out, v, s) / "result.json").is_file()]
    print(f"validator study {spec.path.name}: {len(spec.variants)} variants x {len(spec.seeds)} seeds into "
          f"{out}; {len(todo)} to run, {len(cells) - len(todo)} finished before", flush=True)  # fmt: skip
    for seed in sorted({s for _, s in todo}):  # before concurrent cells of one seed race to generate it
        cfg = spec.cell_config(next(iter(spec.variants)), seed)
        synth = dataclasses.replace(cfg.synth, root=str(Path(cfg.synth.root).resolve()))
        ensure_synthcity(cfg.data, synth)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    connect(address)
    import ray
    from ray import tune

    request, need = trial_resources(probe)
    request = need = {**request, "CPU": 1.0}  # one thread per cell: two 1-thread runs beat one 2-thread run
    check_cluster(need, ray.cluster_resources(), probe)
    # Tune runs trials in their own folders: every relative path absolute ("{seed}" kept in synth.root).
    if "synth.root" in spec.overrides:
        spec = dataclasses.replace(
            spec,
            overrides={**spec.overrides, "synth.root": str(Path(spec.overrides["synth.root"]).resolve())},
        )
    setup = StudySetup(spec, str(out), paths, threads=1)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(study_trial, setup=setup), request),
        param_space={"seed": tune.grid_search(list(spec.seeds)), "variant": tune.grid_search(list(spec.variants))},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            storage_path=str(out / ".tune"), name=f"study-{time.strftime('%Y%m%d-%H%M%S')}",
            failure_config=tune.FailureConfig(max_failures=0),
            progress_reporter=tune.CLIReporter(metric_columns=["miou", "skipped"],
                                               parameter_columns=["variant", "seed"], max_report_frequency=60),
            verbose=1,
        ),
    )  # fmt: skip
    return grid_errors(tuner.fit(), "variant")


def collect_points(out: Path):
    """Every F_T evaluation of the finished cells under `out` as a DataFrame, one row per (network
    artifact, step): seed, variant (the first cell that reached it), stage (F_T_r0, F_T_r1, ...), step,
    key, miou (its true val mIoU), miou_se (its bootstrap std), and every validator by name. Files only."""
    import pandas as pd

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for result in sorted(Path(out).glob("*/result.json")):
        record = json.loads(result.read_text())
        store = Path(record["artifacts_dir"])
        variant = result.parent.name.rsplit("-s", 1)[0]
        for name in sorted(k for k in record if k.startswith("artifacts.F_T_r")):
            stage, key = name.removeprefix("artifacts."), record[name]
            path = store / "segmenter_T" / key / "evaluations.jsonl"
            if not path.is_file():
                continue
            for line in path.read_text().splitlines():
                e = json.loads(line)
                if (key, e["step"]) in rows:
                    continue
                rows[key, e["step"]] = {"seed": record["seed"], "variant": variant, "stage": stage,
                                        "step": e["step"], "key": key, "miou": e["val_miou"],
                                        "miou_se": e.get("val_miou_se", float("nan")),
                                        **{v: e.get(v, float("nan")) for v in VALIDATORS}}  # fmt: skip
    frame = pd.DataFrame(list(rows.values()))
    if len(frame):
        frame = frame.sort_values(["seed", "variant", "stage", "step"]).reset_index(drop=True)
    return frame


def main(argv: list[str] | None = None) -> int:
    """Entry point of tune/validator_study.py: the grid, the points, then the study's table."""
    import argparse
    import subprocess
    import sys

    from symda.sweeps.driver import SweepError
    from symda.sweeps.space import REPO_ROOT

    p = argparse.ArgumentParser(description="Run the validator study (variants x seeds), then its table.")
    p.add_argument("--study", type=Path, default=REPO_ROOT / "configs" / "study" / "validators.yaml",
                   help="study file (default configs/study/validators.yaml)")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the study file's)")
    p.add_argument("--variants", nargs="+", help="variants to run (default: all of the study file's)")
    p.add_argument("--out", type=Path, default=Path("runs/study/validators"),
                   help="cell folders and points.csv (default runs/study/validators)")  # fmt: skip
    p.add_argument("--max-concurrent", type=int, default=2, help="cells at once, one thread each (default 2)")
    p.add_argument("--address", help="join this running Ray cluster (default: start a local one)")
    p.add_argument(
        "--report", type=Path, help="where analysis/validator_study.py writes (default <out>/report)"
    )
    args = p.parse_args(argv)
    try:
        spec = load_study(args.study)
        if args.seeds:
            spec = dataclasses.replace(spec, seeds=tuple(args.seeds))
        if args.variants:
            if unknown := [v for v in args.variants if v not in spec.variants]:
                raise ConfigError(
                    f"--variants {' '.join(unknown)}: not in {args.study} ({', '.join(spec.variants)})"
                )
            spec = dataclasses.replace(spec, variants={v: spec.variants[v] for v in args.variants})
        t0 = time.perf_counter()
        errors = run_study(spec, args.out, args.max_concurrent, args.address)
    except (ConfigError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in errors:
        print(f"failed {line}", file=sys.stderr)
    points = collect_points(args.out)
    points.to_csv(args.out / POINTS_FILE, index=False)
    print(f"{len(points)} points from {points['seed'].nunique() if len(points) else 0} seeds -> "
          f"{args.out / POINTS_FILE} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    script = REPO_ROOT / "analysis" / "validator_study.py"
    done = subprocess.run([sys.executable, str(script), str(args.out), "--out", str(args.report or args.out / "report")],
                          check=False)  # fmt: skip
    return 1 if errors or done.returncode else 0
