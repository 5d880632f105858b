"""The method's ablation ladder as one Ray Tune grid: rows x seeds, one run per cell (symda.sweeps.grid).

A row is a config of configs/synthcity/ (ROWS): the supervised rows (source_only, translated_source,
oracle) run `symda train` (pipeline.run_supervised), the method's rows `symda run`
(pipeline.run_experiment). Seed s sets seed = synth.seed = s and synth.root = data/synthcity-<preset>-s<s>,
as the Makefile's baselines and ladder targets do, so a run's folder <out>/<row>-s<seed> holds the same
files as theirs. A finished run is not run again; rows of one seed share every upstream artifact
through the store (translator, S'/T'/V', F_T/F_S when their configs agree). The table follows in
process (symda.reports.ablation_table).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.config import ConfigError, ExperimentConfig, SynthCityConfig, load_config, parse_override
from symda.sweeps.driver import SweepError, absolute_paths
from symda.sweeps.grid import Cell, run_grid
from symda.sweeps.space import REPO_ROOT

SUPERVISED_ROWS = ("source_only", "translated_source", "oracle")
METHOD_ROWS = (
    "adversarial_only",
    "minent_like",
    "advent_like",
    "translation_adversarial",
    "bdl_like",
    "symmetric_prob_pseudo",
    "full",
)
ROWS = SUPERVISED_ROWS + METHOD_ROWS
GRID_KEYS = ("seed", "synth.seed", "synth.root")  # set by the grid; --set may not change them


@dataclass(frozen=True)
class AblationSetup:
    """Where a grid's cells come from: the rows' folder, the --set values, SynthCity's root per seed."""

    config_dir: str  # absolute folder of <row>.yaml
    out_dir: str  # absolute; run folders are <out_dir>/<row>-s<seed>
    overrides: dict[str, Any]  # --set values, with the config's paths made absolute
    synth_root: str  # absolute, with "{seed}" (and "{preset}": synth.preset)


def row_config(setup: AblationSetup, row: str, seed: int) -> ExperimentConfig:
    """The config of one cell: <config_dir>/<row>.yaml + --set values + the seed's keys."""
    preset = setup.overrides.get("synth.preset", SynthCityConfig().preset)
    grid = {"seed": seed, "synth.seed": seed, "synth.root": setup.synth_root.format(seed=seed, preset=preset)}
    return load_config(Path(setup.config_dir) / f"{row}.yaml", {**setup.overrides, **grid})


def make_cells(
    config_dir: Path, out: Path, overrides: dict[str, Any], synth_root: str, rows: list[str], seeds: list[int]
) -> list[Cell]:
    """Every (row, seed) cell with its config, validated before anything starts (errors name the row's
    file and the key)."""
    for key in GRID_KEYS:
        if key in overrides:
            raise ConfigError(f"--set {key}: the grid sets it per seed (use --seeds, --synth-root)")
    if unknown := [r for r in rows if r not in ROWS]:
        raise ConfigError(f"--rows {' '.join(unknown)}: not a ladder row (known: {', '.join(ROWS)}); "
                          "the entry point (train or run) of a row is fixed in symda/sweeps/ablation.py")  # fmt: skip
    for row in rows:
        if not (config_dir / f"{row}.yaml").is_file():
            raise ConfigError(f"{config_dir / f'{row}.yaml'}: no config for row {row!r}")
    probe = AblationSetup(str(config_dir.resolve()), str(out.resolve()), overrides, synth_root)
    paths = absolute_paths(row_config(probe, rows[0], seeds[0]))  # Tune runs trials in their own folder
    paths.pop("synth.root", None)
    setup = dataclasses.replace(
        probe, overrides={**overrides, **paths}, synth_root=str(Path(synth_root).resolve())
    )
    return [Cell(f"{r}-s{s}", s, row_config(setup, r, s), Path(setup.out_dir) / f"{r}-s{s}", r in SUPERVISED_ROWS)
            for s in seeds for r in rows]  # fmt: skip


def run_ablation(
    rows: list[str],
    seeds: list[int],
    out: Path,
    overrides: dict[str, Any] | None = None,
    max_concurrent: int = 1,
    address: str | None = None,
    config_dir: Path = REPO_ROOT / "configs" / "synthcity",
    synth_root: str = "data/synthcity-{preset}-s{seed}",
    cpus_per_trial: int | None = None,
) -> list[str]:
    """Run the grid (finished cells only report their stored values); return the errors of failed
    cells as "<row>-s<seed>: <exception line>" (empty when every cell finished)."""
    cells = make_cells(Path(config_dir), Path(out), dict(overrides or {}), synth_root, rows, seeds)
    return run_grid(cells, "ablation", Path(out), max_concurrent, cpus_per_trial, address)


def main(argv: list[str] | None = None) -> int:
    """Entry point of tune/run_ablation.py: the grid, then the ablation table of --out."""
    p = argparse.ArgumentParser(
        description="Run the ablation ladder (configs/synthcity rows x seeds) as one Ray Tune grid."
    )
    p.add_argument(
        "--rows", nargs="+", default=list(ROWS), help=f"rows to run (default: all: {' '.join(ROWS)})"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument(
        "--out", default="runs/ablation-{preset}", help="run folders (default runs/ablation-<synth.preset>)"
    )
    p.add_argument("--max-concurrent", type=int, default=1,
                   help="cells at once (default 1: two 2-thread torch runs on 2 cores are >5x slower)")  # fmt: skip
    p.add_argument("--address", help="join this running Ray cluster (default: start a local one)")
    p.add_argument("--cpus-per-trial", type=int,
                   help="CPUs (= torch threads) of each cell (default: the cluster's CPUs / --max-concurrent)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of every row's config, e.g. --set train.steps=600 (repeatable)")  # fmt: skip
    p.add_argument("--config-dir", type=Path, default=REPO_ROOT / "configs" / "synthcity")
    p.add_argument("--synth-root", default="data/synthcity-{preset}-s{seed}", help="SynthCity of each seed")
    p.add_argument("--table", type=Path, help="ablation table to write (default <out>/ablation.md)")
    args = p.parse_args(argv)
    from symda.data.dataset import DatasetError

    try:
        overrides = dict(parse_override(o) for o in args.overrides)
        args.out = Path(args.out.format(preset=overrides.get("synth.preset", SynthCityConfig().preset)))
        errors = run_ablation(args.rows, args.seeds, args.out, overrides, args.max_concurrent, args.address,
                              args.config_dir, args.synth_root, args.cpus_per_trial)  # fmt: skip
    except (ConfigError, SweepError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in errors:
        print(f"failed {line}", file=sys.stderr)
    from symda.reports import ablation_table

    table = args.table or args.out / "ablation.md"
    done = ablation_table.main([str(args.out), "--out", str(table)])
    return 1 if errors or done else 0
