"""The method's ablation ladder as one Ray Tune grid: rows x seeds, one run per trial.

A row is a config of configs/synthcity/ (ROWS): the supervised rows (source_only, translated_source,
oracle) run `symda train` (pipeline.run_supervised), the method's rows `symda run`
(pipeline.run_experiment). Seed s sets seed = synth.seed = s and synth.root = data/synthcity-<preset>-s<s>,
as the Makefile's baselines and ladder targets do, so a run's folder <out>/<row>-s<seed> holds the same
files as theirs. A run whose metrics.json (train) or result.json (run) exists is not run again: its
trial only reports the stored values. Rows of one seed share every upstream artifact through the
store (translator, S'/T'/V', F_T/F_S when their configs agree). Tune's own files go to <out>/.tune/,
which symda.results.load_results skips when it reads <out>, so every run counts once.

This module imports Ray and torch only inside functions (Ray workers import `ablation_trial` by name).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.config import ConfigError, ExperimentConfig, SynthCityConfig, load_config, parse_override
from symda.sweeps.driver import SweepError, absolute_paths, check_cluster, connect, trial_resources
from symda.sweeps.space import REPO_ROOT
from symda.sweeps.summary import http

SUPERVISED_ROWS = ("source_only", "translated_source", "oracle")
METHOD_ROWS = ("adversarial_only", "translation_adversarial", "bdl_like", "symmetric_prob_pseudo", "full")
ROWS = SUPERVISED_ROWS + METHOD_ROWS
GRID_KEYS = ("seed", "synth.seed", "synth.root")  # set by the grid; --set may not change them


@dataclass(frozen=True)
class AblationSetup:
    """What every trial of the grid shares; passed to `ablation_trial` through tune.with_parameters."""

    config_dir: str  # absolute folder of <row>.yaml
    out_dir: str  # absolute; run folders are <out_dir>/<row>-s<seed>
    overrides: dict[str, Any]  # --set values, with the config's paths made absolute
    synth_root: str  # absolute, with "{seed}" (and "{preset}": synth.preset)
    threads: int  # torch threads = the CPUs each trial holds


def row_config(setup: AblationSetup, row: str, seed: int) -> ExperimentConfig:
    """The config of one cell: <config_dir>/<row>.yaml + --set values + the seed's keys."""
    preset = setup.overrides.get("synth.preset", SynthCityConfig().preset)
    grid = {"seed": seed, "synth.seed": seed, "synth.root": setup.synth_root.format(seed=seed, preset=preset)}
    return load_config(Path(setup.config_dir) / f"{row}.yaml", {**setup.overrides, **grid})


def run_dir(setup: AblationSetup, row: str, seed: int) -> Path:
    return Path(setup.out_dir) / f"{row}-s{seed}"


def final_file(row: str, out: Path) -> Path:
    """The file a finished run of this row leaves (what the Makefile's targets test for)."""
    return out / ("metrics.json" if row in SUPERVISED_ROWS else "result.json")


def stored_metrics(row: str, out: Path) -> dict[str, Any]:
    """The Tune result of a finished run: its mIoU (single, fused) and where its record is."""
    data = json.loads(final_file(row, out).read_text())
    miou = data.get("val_miou", data.get("miou"))
    return {
        "miou": miou,
        "miou_fused": data.get("miou_fused", float("nan")),
        "result_json": str(final_file(row, out)),
    }


def ablation_trial(config: dict[str, Any], setup: AblationSetup) -> None:
    """The Tune function trainable: run one (row, seed) cell unless it is finished, report its mIoU.

    Raises whatever the run raises, so Tune records the cell as ERRORED and the grid goes on.
    """
    from ray import tune

    row, seed = config["row"], int(config["seed"])
    out = run_dir(setup, row, seed)
    skipped = final_file(row, out).is_file()
    if not skipped:
        import torch

        from symda.pipeline import run_experiment, run_supervised

        torch.set_num_threads(setup.threads)  # the CPUs this trial holds (Ray sets OMP_NUM_THREADS alike)
        cfg = row_config(setup, row, seed)
        report = log_report(out / "log.jsonl")
        if row in SUPERVISED_ROWS:
            run_supervised(cfg, out, report, resume=True)  # an interrupted run continues from its checkpoint
        else:
            run_experiment(cfg, out, report)
    tune.report({**stored_metrics(row, out), "skipped": skipped})


def log_report(path: Path):
    """A stage `report` that appends each record to the run's log.jsonl, as `symda train/run` do."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def report(metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        with path.open("a") as f:
            f.write(json.dumps(metrics, default=str) + "\n")

    return report


# ---------------------------------------------------------------------------------------- the driver


def make_setup(
    config_dir: Path, out: Path, overrides: dict[str, Any], synth_root: str, rows: list[str], seeds: list[int]
) -> tuple[AblationSetup, dict[tuple[str, int], ExperimentConfig]]:
    """The shared setup and every cell's config, validated before anything starts (errors name the
    row's file and the key)."""
    for key in GRID_KEYS:
        if key in overrides:
            raise ConfigError(f"--set {key}: the grid sets it per seed (use --seeds, --synth-root)")
    if unknown := [r for r in rows if r not in ROWS]:
        raise ConfigError(f"--rows {' '.join(unknown)}: not a ladder row (known: {', '.join(ROWS)}); "
                          "the entry point (train or run) of a row is fixed in symda/sweeps/ablation.py")  # fmt: skip
    for row in rows:
        if not (config_dir / f"{row}.yaml").is_file():
            raise ConfigError(f"{config_dir / f'{row}.yaml'}: no config for row {row!r}")
    probe = AblationSetup(str(config_dir.resolve()), str(out.resolve()), overrides, synth_root, 1)
    paths = absolute_paths(row_config(probe, rows[0], seeds[0]))  # Tune runs trials in their own folder
    paths.pop("synth.root", None)
    setup = AblationSetup(probe.config_dir, probe.out_dir, {**overrides, **paths},
                          str(Path(synth_root).resolve()), 1)  # fmt: skip
    return setup, {(r, s): row_config(setup, r, s) for r in rows for s in seeds}


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
    setup, configs = make_setup(Path(config_dir), Path(out), dict(overrides or {}), synth_root, rows, seeds)
    todo = [(r, s) for (r, s) in configs if not final_file(r, run_dir(setup, r, s)).is_file()]
    print(f"ablation grid: {len(rows)} rows x {len(seeds)} seeds into {setup.out_dir}; {len(todo)} to run, "
          f"{len(configs) - len(todo)} finished before", flush=True)  # fmt: skip
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the CLIReporter table below
    dashboard = connect(address)
    import ray
    from ray import tune

    request, need = trial_resources(configs[rows[0], seeds[0]])
    if configs[rows[0], seeds[0]].scale.num_workers == 0:
        # In-process cells: give each its share of the cluster's CPUs (torch threads = CPUs held), so
        # one cell at a time on 2 cores runs 2 threads, as `make baselines` / `make ladder` do.
        cpus = cpus_per_trial or max(1, int(ray.cluster_resources().get("CPU", 1)) // max_concurrent)
        request = need = {**request, "CPU": float(cpus)}
    check_cluster(need, ray.cluster_resources(), configs[rows[0], seeds[0]])
    setup = dataclasses.replace(setup, threads=max(1, int(request.get("CPU", 1))))
    if max_concurrent > 1:  # concurrent cells of one seed would race to generate its SynthCity
        from symda.data import ensure_synthcity

        for seed in sorted({s for _, s in todo}):
            cfg = next(c for (_, s), c in configs.items() if s == seed)
            ensure_synthcity(cfg.data, cfg.synth)
    print(f"dashboard: {http(dashboard)}" if dashboard else "no dashboard", flush=True)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(ablation_trial, setup=setup), request),
        param_space={"seed": tune.grid_search(seeds), "row": tune.grid_search(rows)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            storage_path=str(Path(setup.out_dir) / ".tune"),
            name=f"ablation-{time.strftime('%Y%m%d-%H%M%S')}",
            failure_config=tune.FailureConfig(max_failures=0),
            progress_reporter=tune.CLIReporter(
                metric_columns=["miou", "miou_fused", "skipped"],
                parameter_columns=["row", "seed"],
                max_report_frequency=60,
            ),  # fmt: skip
            verbose=1,
        ),
    )
    return grid_errors(tuner.fit(), "row")


def grid_errors(results, name_key: str) -> list[str]:
    """ "<name>-s<seed>: <exception line>" for each failed cell of a (name x seed) Tune grid's results."""
    return [f"{r.config[name_key]}-s{r.config['seed']}: {str(r.error).strip().splitlines()[-1]}"
            for r in results if r.error is not None]  # fmt: skip


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
    table = args.table or args.out / "ablation.md"
    script = REPO_ROOT / "analysis" / "ablation_table.py"
    done = subprocess.run([sys.executable, str(script), str(args.out), "--out", str(table)], check=False)
    return 1 if errors or done.returncode else 0
