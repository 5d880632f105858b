"""The validator study's runner: (variant x seed) runs as one Ray Tune grid (symda.sweeps.grid).

A study file (configs/study/validators.yaml) names a base config, fixed overrides ("{seed}" in a value
is the seed), seeds, and variants (overrides of what users tune). Each cell is one `symda run`
(pipeline.run_experiment) into <out>/<variant>-s<seed>; a cell whose metrics.json exists is not run
again, and cells of one seed share every upstream artifact through the store. Every segmenter stage
records its evaluations (val mIoU and every validator) in its artifact; the study's points are F_T's
of every finished cell (symda.reports.validator_study.collect_points), and its table follows in process.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from symda.config import ConfigError, ExperimentConfig, load_config
from symda.sweeps.grid import Cell, run_grid
from symda.sweeps.space import REPO_ROOT, find_file

if TYPE_CHECKING:
    import pandas as pd

POINTS_FILE = "points.csv"
RANGES_FILE = "ranges.json"  # read by symda.reports.selection_study


@dataclass(frozen=True)
class StudySpec:
    """A study file, validated: every cell's config loads."""

    path: Path
    config: Path  # base experiment YAML (absolute)
    overrides: dict[str, Any]  # "{seed}" in a string value is the cell's seed
    seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]]
    space: Path | None = None  # the sweep space file its `sample:` draws from (None: variants listed)

    def cell_config(self, variant: str, seed: int, paths: dict[str, str] | None = None) -> ExperimentConfig:
        """The config of one cell: base + overrides (seed filled in) + the variant + seed keys."""
        fixed = {k: v.format(seed=seed) if isinstance(v, str) else v for k, v in self.overrides.items()}
        return load_config(self.config, {**fixed, **(paths or {}), **self.variants[variant],
                                         "seed": seed, "synth.seed": seed, "name": f"{variant}-s{seed}"})  # fmt: skip


def load_study(path: Path) -> StudySpec:
    """Read and check a study file; ConfigError naming the file and the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    data = yaml.safe_load(path.read_text()) or {}
    allowed = {"config", "overrides", "seeds", "variants", "sample"}
    if unknown := set(data) - allowed:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} (valid: {sorted(allowed)})")
    if "sample" in data:
        data["variants"] = {**(data.get("variants") or {}), **sampled_variants(path, data["sample"])}
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
    space = find_file(data["sample"]["space"], "sweep space") if "sample" in data else None
    spec = StudySpec(path, config, dict(data.get("overrides") or {}), tuple(data.get("seeds") or (0,)),
                     {str(k): dict(v) for k, v in variants.items()}, space)  # fmt: skip
    for name in spec.variants:
        try:
            spec.cell_config(name, spec.seeds[0])
        except ConfigError as err:
            raise ConfigError(f"{path}: variants.{name}: {err}") from None
    return spec


def sampled_variants(path: Path, sample: Any) -> dict[str, dict[str, Any]]:
    """`sample: {space: <sweep space file>, n: N, seed: S}` as variants cfg00 ... : N configurations
    drawn at random from the sweep's space (its conditional parameters as the sweep draws them; its
    `set:` overrides in each), so a study judges validators on the configurations that sweep compares.
    Optuna's RandomSampler with seed S: the same file gives the same variants."""
    import optuna

    from symda.sweeps.space import load_space
    from symda.sweeps.space import sample as sample_params

    if not isinstance(sample, dict) or set(sample) - {"space", "n", "seed"} or "space" not in sample:
        raise ConfigError(
            f"{path}: sample: expected {{space: <sweep space file>, n: N, seed: S}}, got {sample!r}"
        )
    n, seed = sample.get("n", 24), sample.get("seed", 0)
    if not isinstance(n, int) or n < 1 or not isinstance(seed, int):
        raise ConfigError(
            f"{path}: sample: n must be a positive integer and seed an integer, got {n!r}, {seed!r}"
        )
    try:
        space = load_space(sample["space"])
    except ConfigError as err:
        raise ConfigError(f"{path}: sample.space: {err}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    width = len(str(n - 1))
    return {
        f"cfg{i:0{width}d}": {**space.overrides, **sample_params(draw.ask(), space.params)} for i in range(n)
    }


def cell_dir(out: Path, variant: str, seed: int) -> Path:
    return Path(out) / f"{variant}-s{seed}"


def run_study(spec: StudySpec, out: Path, max_concurrent: int = 2, address: str | None = None,
              use_ray: bool = True, threads: int = 1, keep: Path | None = None) -> list[str]:  # fmt: skip
    """Run every cell not finished yet (`threads` CPU threads each, `max_concurrent` at a time) as a
    Ray Tune grid, or without Ray (`use_ray` False: processes of this machine); return the errors of
    failed cells as "<variant>-s<seed>: <exception line>". A cell whose record is in `keep` (see
    `keep_records`) counts as finished too, even where its folder and store are gone."""
    from symda.sweeps.driver import absolute_paths

    out = Path(out).resolve()
    probe = spec.cell_config(next(iter(spec.variants)), spec.seeds[0])
    per_seed = [k for k, v in spec.overrides.items() if isinstance(v, str) and "{seed}" in v]
    paths = {k: v for k, v in absolute_paths(probe).items() if k not in per_seed}
    # Tune runs trials in their own folders: every relative path absolute ("{seed}" kept where it is).
    for key in set(per_seed) & {"synth.root", "select.reference"}:
        spec = dataclasses.replace(
            spec, overrides={**spec.overrides, key: str(Path(spec.overrides[key]).resolve())}
        )
    # Variant-major: cells that run at once are other seeds, not ones waiting on the same upstream.
    cells = [Cell(f"{v}-s{s}", s, spec.cell_config(v, s, paths), cell_dir(out, v, s))
             for v in spec.variants for s in spec.seeds]  # fmt: skip
    if keep is not None:
        kept = [c.name for c in cells if (Path(keep) / c.name / "result.json").is_file()]
        if kept:
            print(f"{len(kept)} cells kept in {keep}, not run again: {' '.join(kept)}", flush=True)
        cells = [c for c in cells if c.name not in kept]
        if not cells:
            return []
    print(
        f"validator study {spec.path.name}: {len(spec.variants)} variants x {len(spec.seeds)} seeds",
        flush=True,
    )
    if not use_ray:
        from symda.sweeps.grid import run_cells_here

        return run_cells_here(cells, max_concurrent, threads)
    # One thread per cell: two 1-thread runs beat one 2-thread run on these small networks.
    return run_grid(cells, "study", out, max_concurrent, cpus_per_cell=threads, address=address)


def studied_ranges(folder: Path, space_file: Path) -> dict[str, list[float]]:
    """Where a study's figures hold: {key: [low, high]} of each numeric parameter of the sweep space
    `space_file` over the configurations of the finished cells under `folder` (their config.yaml),
    counting a configuration only where the parameter is active. A sweep's pick outside these spans
    was never scored by the study, and its summary says so (symda.sweeps.summary.range_line)."""
    from symda.sweeps.space import active, load_space

    space = load_space(space_file)
    values: dict[str, list[float]] = {}
    for config in sorted(Path(folder).glob("*/config.yaml")):
        if not (config.parent / "result.json").is_file():
            continue
        data = yaml.safe_load(config.read_text()) or {}
        sampled: dict[str, Any] = {}
        for param in space.params:
            value: Any = data
            for part in param.key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or not active(param, sampled):
                continue
            sampled[param.key] = value
            if param.dist != "choice":
                values.setdefault(param.key, []).append(float(value))
    return {key: [min(v), max(v)] for key, v in values.items()}


def write_ranges(folder: Path, space_file: Path) -> Path:
    """studied_ranges of `folder` as `folder`/ranges.json, where the selection study's report reads it."""
    import json

    path = Path(folder) / RANGES_FILE
    path.write_text(json.dumps(studied_ranges(folder, space_file), indent=1) + "\n")
    return path


def keep_records(out: Path, keep: Path, points: pd.DataFrame) -> pd.DataFrame:
    """Keep a study's results where they outlive its run folder (docs/results/selection/cells/...):
    copy each finished cell's config.yaml and result.json from `out` into `keep`/<cell>/, and merge
    `points` (collect_points of `out`) into `keep`/points.csv. The points of cells kept earlier stay,
    though their stores may be gone (another checkout); a (key, step) collected again takes the new
    row. Writes the merged file through a temporary one, so an interruption loses nothing kept.
    Returns the merged points."""
    import shutil

    import pandas as pd

    keep = Path(keep)
    keep.mkdir(parents=True, exist_ok=True)
    for result in sorted(Path(out).glob("*/result.json")):
        folder = keep / result.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "result.json"):
            if (result.parent / name).is_file():
                shutil.copyfile(result.parent / name, folder / name)
    old = keep / POINTS_FILE
    merged = points
    if old.is_file():
        earlier = pd.read_csv(old)
        if len(points):
            again = earlier.set_index(["key", "step"]).index.isin(points.set_index(["key", "step"]).index)
            earlier = earlier[~again]
        merged = pd.concat([earlier, points], ignore_index=True) if len(points) else earlier
        if len(merged):
            merged = merged.sort_values(["seed", "variant", "stage", "step"]).reset_index(drop=True)
    tmp = old.with_suffix(".csv.tmp")
    merged.to_csv(tmp, index=False)
    tmp.replace(old)
    return merged


def main(argv: list[str] | None = None) -> int:
    """Entry point of tune/validator_study.py: the grid, the points, then the study's table."""
    import argparse
    import sys

    from symda.reports.validator_study import collect_points, report
    from symda.sweeps.driver import SweepError

    p = argparse.ArgumentParser(description="Run the validator study (variants x seeds), then its table.")
    p.add_argument("--study", type=Path, default=REPO_ROOT / "configs" / "study" / "validators.yaml",
                   help="study file (default configs/study/validators.yaml)")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the study file's)")
    p.add_argument("--variants", nargs="+", help="variants to run (default: all of the study file's)")
    p.add_argument("--out", type=Path, default=Path("runs/study/validators"),
                   help="cell folders and points.csv (default runs/study/validators)")  # fmt: skip
    p.add_argument("--max-concurrent", type=int, default=2, help="cells at once, one thread each (default 2)")
    p.add_argument("--address", help="join this running Ray cluster (default: start a local one)")
    p.add_argument("--report", type=Path, help="where the study's table and plots go (default <out>/report)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override every cell's config, e.g. --set scale.use_gpu=true (repeatable)")  # fmt: skip
    p.add_argument("--keep", type=Path,
                   help="also keep the finished cells' records and the points here (merged with those kept "
                        "earlier); cells kept here are not run again")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch threads per cell (default 1)")
    p.add_argument("--no-ray", action="store_true",
                   help="run the cells in processes of this machine, without Ray (where it is not installed)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        spec = load_study(args.study)
        if args.overrides:
            from symda.config import parse_override

            spec = dataclasses.replace(
                spec, overrides={**spec.overrides, **dict(map(parse_override, args.overrides))}
            )
        if args.seeds:
            spec = dataclasses.replace(spec, seeds=tuple(args.seeds))
        if args.variants:
            if unknown := [v for v in args.variants if v not in spec.variants]:
                raise ConfigError(
                    f"--variants {' '.join(unknown)}: not in {args.study} ({', '.join(spec.variants)})"
                )
            spec = dataclasses.replace(spec, variants={v: spec.variants[v] for v in args.variants})
        t0 = time.perf_counter()
        errors = run_study(
            spec, args.out, args.max_concurrent, args.address, not args.no_ray, args.threads, args.keep
        )
    except (ConfigError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in errors:
        print(f"failed {line}", file=sys.stderr)
    points = collect_points(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    points.to_csv(args.out / POINTS_FILE, index=False)
    print(f"{len(points)} points from {points['seed'].nunique() if len(points) else 0} seeds -> "
          f"{args.out / POINTS_FILE} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    if spec.space is not None:
        write_ranges(args.out, spec.space)
    if args.keep:
        kept = keep_records(args.out, args.keep, points)
        if spec.space is not None:
            write_ranges(args.keep, spec.space)
        print(f"{len(kept)} points in all kept in {args.keep / POINTS_FILE}", flush=True)
        if points.empty and len(kept):
            return 1 if errors else 0  # every cell was kept earlier: nothing new to report here
    if points.empty:
        print(f"error: {args.out}: no points (no finished cell with F_T evaluations)", file=sys.stderr)
        return 1
    print(f"the study's table: {report(args.out, args.report or args.out / 'report')}")
    return 1 if errors else 0
