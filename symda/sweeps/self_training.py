"""The self-training study: recipes x seeds as one Ray Tune grid (symda.sweeps.grid), then its tables.

The study file (configs/study/self_training.yaml) names presets (the base every row
overrides: a config of configs/synthcity, --set values, and the SynthCity root of each seed) and rows
(dotted overrides: a recipe of self-training, or a headroom diagnostic that reads the target labels).
Cell <row>-s<seed> runs `symda run` into <out>/<preset>/<row>-s<seed>; a finished cell is not run
again and rows of one seed share every upstream artifact through the store (the translator, S', the
adapted F_T), so a row costs its pseudo labels and its self-training only. The tables follow in
process (symda.reports.self_training).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from symda.config import ConfigError, ExperimentConfig, load_config, parse_override
from symda.sweeps.driver import SweepError, absolute_paths
from symda.sweeps.grid import Cell, run_grid
from symda.sweeps.space import REPO_ROOT

STUDY_FILE = REPO_ROOT / "configs" / "study" / "self_training.yaml"
GRID_KEYS = ("seed", "synth.seed", "synth.root")  # set per seed by the study


def read_study(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(presets, rows) of a study file, checked: every preset has config, synth_root and set; every
    row is a mapping of dotted keys (the config checks each key and value when a cell is made)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a readable study file ({err})") from None
    if not isinstance(data, dict) or set(data) != {"presets", "rows"}:
        raise ConfigError(f"{path}: expected the keys presets and rows")
    presets, rows = data["presets"], data["rows"]
    for name, preset in presets.items():
        if not isinstance(preset, dict) or set(preset) != {"config", "synth_root", "set"}:
            raise ConfigError(f"{path}: presets.{name}: expected the keys config, synth_root and set")
        if "{seed}" not in preset["synth_root"]:
            raise ConfigError(
                f"{path}: presets.{name}.synth_root: must hold {{seed}} (each seed is its own SynthCity)"
            )
    for name, row in rows.items():
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: rows.{name}: expected a mapping of dotted keys, got {row!r}")
        if bad := [k for k in row if k in GRID_KEYS]:
            raise ConfigError(f"{path}: rows.{name}.{bad[0]}: the study sets it per seed")
    return presets, rows


def cell_config(
    preset: dict[str, Any], row: dict[str, Any], seed: int, overrides: dict[str, Any]
) -> ExperimentConfig:
    """One cell's config: the preset's config file + its set + the row + --set values + the seed's keys."""
    root = Path(preset["synth_root"].format(seed=seed)).resolve()  # against the cwd, as the Makefile's
    grid = {"seed": seed, "synth.seed": seed, "synth.root": str(root)}
    return load_config(REPO_ROOT / preset["config"], {**preset["set"], **row, **overrides, **grid})


def make_cells(study: Path, preset_name: str, rows: list[str] | None, seeds: list[int], out: Path,
               overrides: dict[str, Any]) -> list[Cell]:  # fmt: skip
    """Every (row, seed) cell of the preset, its config validated before anything runs, every path
    absolute (Tune runs trials in folders of their own)."""
    presets, all_rows = read_study(study)
    if preset_name not in presets:
        raise ConfigError(f"--preset {preset_name}: not in {study} (it has {', '.join(presets)})")
    rows = rows or list(all_rows)
    if unknown := [r for r in rows if r not in all_rows]:
        raise ConfigError(f"--rows {' '.join(unknown)}: not a row of {study} ({', '.join(all_rows)})")
    preset = presets[preset_name]
    cells = []
    for row in rows:  # row-major: cells run at once (--max-concurrent) are of different seeds when
        for seed in seeds:  # there are several, so they do not wait on one seed's upstream build
            cfg = cell_config(preset, all_rows[row], seed, overrides)
            cfg = cell_config(preset, all_rows[row], seed, {**overrides, **absolute_paths(cfg)})
            cells.append(Cell(f"{row}-s{seed}", seed, cfg, (out / preset_name / f"{row}-s{seed}").resolve()))
    return cells


def main(argv: list[str] | None = None) -> int:
    """Entry point of tune/self_training_study.py: the grid, then the study's tables."""
    p = argparse.ArgumentParser(
        description="Run the self-training study (rows x seeds of a preset) as one Ray Tune grid."
    )
    p.add_argument("--study", type=Path, default=STUDY_FILE, help="study file (default %(default)s)")
    p.add_argument(
        "--preset", default="screen", help="screen (the main job's upstream) or ladder (full size)"
    )
    p.add_argument("--rows", nargs="+", help="rows to run (default: every row of the study file)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/v2/self_training"),
        help="run folders (<out>/<preset>/<row>-s<seed>)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of every cell's config (repeatable)")  # fmt: skip
    p.add_argument("--table", type=Path, help="tables to write (default <out>/<preset>/self_training.md)")
    p.add_argument("--address", help="join this running Ray cluster (default: start a local one)")
    p.add_argument("--max-concurrent", type=int, default=1,
                   help="cells at once, each on the cluster's CPUs / this many threads (default 1); rows "
                        "of one seed share its upstream, so a cell whose upstream another is building waits")  # fmt: skip
    args = p.parse_args(argv)
    from symda.data.dataset import DatasetError

    try:
        overrides = dict(parse_override(o) for o in args.overrides)
        cells = make_cells(args.study, args.preset, args.rows, args.seeds, args.out, overrides)
        errors = run_grid(
            cells, "self_training", args.out / args.preset, args.max_concurrent, None, args.address
        )
    except (ConfigError, SweepError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in errors:
        print(f"failed {line}", file=sys.stderr)
    from symda.reports import self_training

    table = args.table or args.out / args.preset / "self_training.md"
    done = self_training.main([str(args.out / args.preset), "--out", str(table)])
    return 1 if errors or done else 0
