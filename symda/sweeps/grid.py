"""A grid of runs (name x seed) as one Ray Tune experiment: the ablation ladder and the validator study.

Each cell is one run of a given config into its own folder: `symda train` (pipeline.run_supervised)
for a supervised row, `symda run` (pipeline.run_experiment) otherwise. A cell whose final file
exists is not run again: its trial only reports the stored values; an interrupted supervised run
resumes from its checkpoint, and every run's stages come from the store. Cells of one seed share
every upstream artifact through the store. Tune's own files go to <out>/.tune/, which
symda.results.load_results skips when it reads <out>, so every run counts once.

This module imports Ray and torch only inside functions (Ray workers import `grid_trial` by name).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its name ("<row>-s<seed>"), config and folder, and which entry point runs it."""

    name: str
    seed: int
    config: ExperimentConfig  # every path in it absolute (Tune runs trials in folders of its own)
    out: Path
    supervised: bool = False  # symda train (a metrics.json) instead of symda run (a result.json)

    @property
    def final_file(self) -> Path:
        """The file a finished run of this cell writes last, symda train's and symda run's alike (what
        symda.run_folder and the Makefile's targets test for)."""
        return self.out / "metrics.json"

    @property
    def record_file(self) -> Path:
        """The run's record: symda train's metrics.json, symda run's result.json."""
        return self.out / ("metrics.json" if self.supervised else "result.json")

    def finished(self) -> bool:
        return self.final_file.is_file()

    def stored_metrics(self) -> dict[str, Any]:
        """The Tune result of a finished cell: its mIoU (single, fused) and where its record is."""
        data = json.loads(self.record_file.read_text())
        return {"miou": data.get("val_miou", data.get("miou")), "miou_fused": data.get("miou_fused", float("nan")),
                "result_json": str(self.record_file)}  # fmt: skip


@dataclass(frozen=True)
class GridSetup:
    """What every trial of the grid shares; passed to `grid_trial` through tune.with_parameters."""

    cells: dict[str, Cell]
    threads: int  # torch threads = the CPUs each trial holds


def log_report(path: Path):
    """A stage `report` that appends each record to the run's log.jsonl, as `symda train/run` do."""
    from symda.records import append_jsonl

    def report(record: Any, checkpoint: Path | None = None) -> None:
        append_jsonl(path, record)

    return report


def grid_trial(config: dict[str, Any], setup: GridSetup) -> None:
    """The Tune function trainable: run one cell unless it is finished, then report its mIoU.

    Raises whatever the run raises, so Tune records the cell as ERRORED and the grid goes on.
    """
    from ray import tune

    cell = setup.cells[config["cell"]]
    skipped = cell.finished()
    if not skipped:
        run_cell(cell, setup.threads)
    tune.report({**cell.stored_metrics(), "skipped": skipped})


def run_cell(cell: Cell, threads: int) -> None:
    """Run one cell in this process with `threads` torch threads (the CPUs it holds)."""
    import torch

    from symda.pipeline import run_experiment, run_supervised

    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS alike for a trial
    report = log_report(cell.out / "log.jsonl")
    if cell.supervised:
        run_supervised(cell.config, cell.out, report, resume=True)  # an interrupted run continues
    else:
        run_experiment(cell.config, cell.out, report)


def _prepare_data(todo: list[Cell]) -> None:
    """Generate each seed's SynthCity before concurrent cells of one seed race to generate it."""
    from symda.data import ensure_synthcity

    for seed in sorted({c.seed for c in todo}):
        cfg = next(c.config for c in todo if c.seed == seed)
        ensure_synthcity(cfg.data, dataclasses.replace(cfg.synth, root=str(Path(cfg.synth.root).resolve())))


def run_cells_here(cells: list[Cell], max_concurrent: int = 1, threads: int = 1) -> list[str]:
    """The grid without Ray, for a machine that lacks it (a lent GPU box, say): every unfinished cell
    in a process of its own, `max_concurrent` at a time, `threads` torch threads each; the same
    folders, store and resumption as `run_grid`, without Tune's scheduling and dashboard. Returns the
    errors of failed cells as "<cell>: <exception line>"."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    todo = [c for c in cells if not c.finished()]
    print(f"{len(cells)} cells, {len(todo)} to run here without Ray, {max_concurrent} at a time", flush=True)
    _prepare_data(todo)
    errors = []
    context = multiprocessing.get_context("spawn")  # no forked torch state in the children
    with ProcessPoolExecutor(max(1, max_concurrent), mp_context=context) as pool:
        running = {pool.submit(run_cell, c, threads): c for c in todo}
        for done in as_completed(running):
            cell = running[done]
            try:
                done.result()
                print(f"{cell.name}: done ({time.strftime('%H:%M:%S')})", flush=True)
            except Exception as err:  # the grid goes on, as Tune's does
                errors.append(
                    f"{cell.name}: {str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}"
                )
    return errors


def run_grid(
    cells: list[Cell],
    kind: str,
    out: Path,
    max_concurrent: int = 1,
    cpus_per_cell: int | None = None,
    address: str | None = None,
) -> list[str]:
    """Run every cell not finished yet, `max_concurrent` at a time, each on `cpus_per_cell` CPUs
    (default: the cluster's CPUs / max_concurrent); return the errors of failed cells as
    "<cell>: <exception line>". `kind` names the grid ("ablation", "study") in Tune's folders."""
    from symda.sweeps.driver import check_cluster, connect, trial_resources
    from symda.sweeps.summary import http

    todo = [c for c in cells if not c.finished()]
    print(f"{kind} grid: {len(cells)} cells into {out}; {len(todo)} to run, {len(cells) - len(todo)} "
          "finished before", flush=True)  # fmt: skip
    _prepare_data(todo)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the CLIReporter table below
    dashboard = connect(address)
    import ray
    from ray import tune

    probe = cells[0].config
    request, need = trial_resources(probe)
    if probe.scale.num_workers == 0:
        # In-process cells: each holds its share of the cluster's CPUs (torch threads = CPUs held), so
        # one cell at a time on 2 cores runs 2 threads, as `make baselines` / `make ladder` do.
        cpus = cpus_per_cell or max(1, int(ray.cluster_resources().get("CPU", 1)) // max_concurrent)
        request = need = {**request, "CPU": float(cpus)}
    check_cluster(need, ray.cluster_resources(), probe)
    print(f"dashboard: {http(dashboard)}" if dashboard else "no dashboard", flush=True)
    setup = GridSetup({c.name: c for c in cells}, threads=max(1, int(request.get("CPU", 1))))
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(grid_trial, setup=setup), request),
        param_space={"cell": tune.grid_search([c.name for c in cells])},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            storage_path=str(Path(out).resolve() / ".tune"),
            name=f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}",
            failure_config=tune.FailureConfig(max_failures=0),
            progress_reporter=tune.CLIReporter(metric_columns=["miou", "miou_fused", "skipped"],
                                               parameter_columns=["cell"], max_report_frequency=60),
            verbose=1,
        ),
    )  # fmt: skip
    return [
        f"{r.config['cell']}: {str(r.error).strip().splitlines()[-1]}"
        for r in tuner.fit()
        if r.error is not None
    ]
