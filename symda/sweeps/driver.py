"""Sweeps over the whole method with Ray Tune: Optuna's TPE proposes, ASHA stops, the store reuses.

A sweep = a space file (symda/sweeps/space.py) + a base experiment config. The driver builds the
upstream stages the space names (data | translate | adapt) once, then runs trials; each trial is
`run_trial`: the base config plus its sampled parameters through `symda.pipeline.run_experiment`,
so everything upstream of what it varies comes from the artifact store. During F_T's self-training
a trial reports, at every evaluation (self_train.eval_every), with "progress" = self-training steps done
(ASHA's time attribute):
- "miou": target-val mIoU of F_T (the truth; needs the val labels, read only by the evaluation),
- every validator of symda.select.VALIDATORS by name ("agreement", "entropy", "source_miou", ...):
  scores of F_T that read no target label (symda.select.validators).
`--select-by` picks which of them TPE and ASHA optimise: by default the config's select.by, the
winner of the validator study (docs/results/validators/validators.md); `--select-by miou` selects with target
labels. The summary prints, for every validator, its rank correlation with miou over the trials and
the mIoU its pick would have cost (regret), beside what the study expects of it.

This module imports Ray, Optuna and torch only inside functions, so it is importable anywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from symda.config import ConfigError, ExperimentConfig, load_config, parse_override
from symda.preflight import check_model_weights, check_writable
from symda.select import NEEDS, TRUE_METRIC, VALIDATORS
from symda.sweeps.space import DefineByRun, SweepSpace, check_space, find_file, load_space
from symda.sweeps.summary import SweepSummary, http, print_summary, summarize
from symda.sweeps.trial import TrialSetup, run_trial, total_progress, tune_result
from symda.tracking import TRACKERS, tune_callbacks

__all__ = ["SweepError", "SweepOptions", "check_cluster", "default_concurrency", "load_space", "main",
           "parse_args", "run_sweep", "run_trial", "summarize", "trial_resources", "tune_result"]  # fmt: skip

SELECT_BY = (TRUE_METRIC, *VALIDATORS)
DASHBOARD_PORT = 8265
SETTINGS_FILE = "sweep.json"  # what a sweep started with, so `--resume` needs no other flag


class SweepError(RuntimeError):
    """A sweep that cannot start (resources, folders); the message says what to change."""


# ----------------------------------------------------------------------------------------- resources


def absolute_paths(cfg: ExperimentConfig) -> dict[str, str]:
    """Overrides that make the config's relative paths absolute (against the cwd, where they were
    meant): Tune runs each trial in its own working folder."""
    keys = {
        "artifacts_dir": cfg.artifacts_dir,
        "out_dir": cfg.out_dir,
        "synth.root": cfg.synth.root,
        "data.source_root": cfg.data.source_root,
        "data.target_root": cfg.data.target_root,
        "data.source_list": cfg.data.source_list,
        "data.target_list": cfg.data.target_list,
        "select.reference": cfg.select.reference,
    }
    if cfg.model.weights not in ("none", "torch_cache"):
        keys["model.weights"] = cfg.model.weights
    # ~ and $VARS first (dataset roots expand them, symda.data.dataset_root): "$X" made absolute
    # against the cwd would no longer name the variable's folder.
    return {k: str(Path(os.path.expandvars(os.path.expanduser(v))).resolve()) for k, v in keys.items() if v}


def trial_resources(cfg: ExperimentConfig) -> tuple[dict[str, float], dict[str, float]]:
    """(what a Tune trial asks for, everything one trial occupies), from cfg.scale.

    scale.num_workers 0: the stage loops run inside the trial, which holds their CPUs (and GPU).
    N > 0: the trial is a Ray Train driver that holds only the custom resource "train_driver" (Tune
    refuses {"CPU": 0} alone, and a 1-CPU driver beside 1-CPU workers never fits on 2 cores); its N
    workers then hold scale.cpus_per_worker CPUs (and gpus_per_worker GPUs) each.
    """
    s = cfg.scale
    worker: dict[str, float] = {"CPU": float(s.cpus_per_worker)}
    if s.use_gpu:
        worker["GPU"] = float(s.gpus_per_worker)
    if s.num_workers == 0:
        return worker, dict(worker)
    return {"CPU": 0.0, "train_driver": 1.0}, {k: v * s.num_workers for k, v in worker.items()}


def check_cluster(need: dict[str, float], cluster: dict[str, float], cfg: ExperimentConfig) -> None:
    """Raise SweepError when one trial needs more of a resource than the whole cluster has, rather
    than let Tune wait forever for it."""
    s = cfg.scale
    for resource, amount in need.items():
        have = cluster.get(resource, 0.0)
        if amount > have:
            raise SweepError(
                f"each trial needs {amount:g} {resource} (scale.use_gpu={s.use_gpu}, scale.num_workers="
                f"{s.num_workers}, scale.cpus_per_worker={s.cpus_per_worker}, scale.gpus_per_worker="
                f"{s.gpus_per_worker}) but the Ray cluster has {have:g} {resource} in all: lower scale.* with "
                "--set, or pass --address of a cluster that has them"
            )
    if need.get("CPU", 0.0) == 0.0 and s.num_workers and cluster.get("train_driver", 0.0) < 1:
        raise SweepError(
            "scale.num_workers > 0 makes each trial a Ray Train driver, which holds the custom resource "
            "'train_driver'; this cluster has none: start its head with "
            "`ray start --head --resources='{\"train_driver\": 8}'`"
        )


def default_concurrency(need: dict[str, float], cluster: dict[str, float]) -> int:
    """How many trials fit side by side: the scarcest resource decides (at least 1)."""
    fits = [int(cluster.get(r, 0.0) // amount) for r, amount in need.items() if amount > 0]
    return max(1, min(fits, default=1))


def free_port(preferred: int, tries: int = 50) -> int:
    """`preferred`, or the first port after it that 127.0.0.1 can bind now (0: none of `tries`)."""
    import socket

    for port in range(preferred, preferred + tries):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0


def connect(address: str | None) -> str:
    """Join a Ray cluster (`address`, or RAY_ADDRESS as `ray job submit` sets it, or the session this
    process already started) or start a local one with the dashboard on 127.0.0.1:8265.

    Returns the dashboard's host:port ("" when the cluster runs none). Trials' own output stays out
    of this console (log_to_driver=False): the reporter's table is the progress, and every trial's
    log is in the dashboard (and its error in the summary), instead of a flood of worker lines.
    """
    import ray

    if ray.is_initialized():
        from ray._private.worker import get_dashboard_url  # no public getter for a running session

        return get_dashboard_url() or ""
    # Stage loops with scale.num_workers > 0 run as Ray Train runs: list them in the dashboard.
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
    quiet_ray_notices()
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        return ray.init(address=address, log_to_driver=False, logging_level="WARNING").dashboard_url or ""
    from symda.distributed import start_local_ray

    ctx = start_local_ray(  # every port on 127.0.0.1 (README: Monitoring)
        include_dashboard=True,
        dashboard_host="127.0.0.1",  # loopback only: the dashboard can submit jobs
        dashboard_port=free_port(DASHBOARD_PORT),  # Ray refuses a busy one (another sweep's)
        resources={"train_driver": os.cpu_count() or 1},  # see trial_resources
        log_to_driver=False,
        logging_level="WARNING",
    )
    return ctx.dashboard_url or ""


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet_ray_notices() -> None:
    """Silence Ray's start-up notice that token authentication is on (its default, the safe mode,
    nothing to act on); its warning that authentication is *off* stays."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropMessages) for f in logger.filters):
        logger.addFilter(_DropMessages("Token authentication is enabled"))


def sweep_reporter(**kwargs):
    """Tune's CLIReporter(**kwargs), its tables without Tune's "Result logdir: ..." line: that is
    Ray's staging folder, not where the results are (the sweep folder, printed at the start)."""
    from ray import tune

    class Reporter(tune.CLIReporter):
        def report(self, trials, done, *sys_info) -> None:
            lines = self._progress_str(trials, done, *sys_info).split("\n")
            self._print("\n".join(line for line in lines if not line.startswith("Result logdir:")))

    return Reporter(**kwargs)


# ----------------------------------------------------------------------------------------- settings


@dataclass
class SweepSettings:
    """Everything a sweep started with; saved as sweep.json next to its results."""

    space: str
    base_config: str
    overrides: dict[str, Any]  # the user's --set values
    paths: dict[str, str]  # the config's paths made absolute (absolute_paths), for the trials
    num_samples: int
    select_by: str
    seed: int
    max_concurrent: int = 0  # 0: from the cluster's resources
    max_failures: int = 0

    def trial_overrides(self) -> dict[str, Any]:
        return {**self.overrides, **self.paths}

    def save(self, path: Path) -> None:
        from symda.io import write_json

        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> SweepSettings:
        return cls(**json.loads(path.read_text()))


@dataclass
class SweepOptions:
    """The command line of every tune/sweep_*.py script (see `parse_args`)."""

    space: str
    config: str | None = None
    num_samples: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    storage: str = "runs/sweeps"
    name: str | None = None
    resume: bool = False
    select_by: str | None = None
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    max_failures: int | None = None
    fresh: bool = False
    tracker: str | None = None  # symda.tracking.TRACKERS: also log every trial to MLflow or W&B


def parse_args(argv: list[str] | None, default_space: str) -> SweepOptions:
    """Parse a sweep script's flags; `default_space` is the script's own space file."""
    p = argparse.ArgumentParser(description="Run a hyper-parameter sweep (Ray Tune + Optuna TPE + ASHA).")
    p.add_argument("--space", default=default_space, help=f"search-space YAML (default {default_space})")
    p.add_argument("--config", help="base experiment YAML (default: the space file's `config`)")
    p.add_argument("--num-samples", type=int, help="number of trials (default: the space file's)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    p.add_argument("--address", help="join this running Ray cluster (default: start a local one)")
    p.add_argument("--storage", default="runs/sweeps", help="folder of sweep results (default runs/sweeps)")
    p.add_argument(
        "--name", help="sweep name (default: <space name>-<date>-<time>; with --resume: the latest)"
    )
    p.add_argument("--resume", action="store_true", help="finish an interrupted sweep with its own settings")
    p.add_argument("--select-by", choices=SELECT_BY, metavar="{miou,<validator>}",
                   help="what TPE and ASHA optimise: miou (reads target labels) or a validator, one of "
                   f"{', '.join(VALIDATORS)} (default: the space file's select_by, else the base config's select.by)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override of the base config, e.g. --set train.steps=200 (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed of the TPE sampler (default 0)")
    p.add_argument("--max-failures", type=int, help="restarts of a crashed trial (default 0)")
    p.add_argument("--fresh", action="store_true",
                   help="search anew even when a finished sweep with the same settings exists (default: replay it)")  # fmt: skip
    p.add_argument("--tracker", choices=TRACKERS,
                   help="also log every trial to MLflow (SWEEP/mlflow.db, SQLite) or W&B (offline under SWEEP/wandb "
                   "without WANDB_API_KEY) through Ray Tune's callbacks (default: neither; TensorBoard always)")  # fmt: skip
    return SweepOptions(**vars(p.parse_args(argv)))


def _resolve(opts: SweepOptions) -> tuple[Path, SweepSettings]:
    """The experiment folder and the settings: new ones from the flags, or the saved ones (--resume)."""
    storage = Path(opts.storage).resolve()
    stem = Path(opts.space).stem
    if opts.resume:
        fixed = ("config", "num_samples", "max_concurrent", "select_by", "seed", "max_failures")
        given = [f for f in fixed if getattr(opts, f) is not None]
        if opts.overrides:
            given.append("set")
        if given:
            flags = ", ".join("--" + g.replace("_", "-") for g in given)
            raise SweepError(
                f"--resume continues a sweep with the settings it started with ({SETTINGS_FILE}); drop {flags}"
            )
        if opts.name:
            exp_dir = storage / opts.name
        else:  # the latest sweep of this space
            found = sorted(storage.glob(f"{stem}-*/{SETTINGS_FILE}"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise SweepError(f"--resume: no {stem}-* sweep under {storage} (pass --name)")
            exp_dir = found[-1].parent
        if not (exp_dir / SETTINGS_FILE).is_file():
            raise SweepError(f"--resume: {exp_dir} holds no sweep ({SETTINGS_FILE} is missing)")
        return exp_dir, SweepSettings.load(exp_dir / SETTINGS_FILE)
    exp_dir = storage / (opts.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if exp_dir.exists():
        raise SweepError(f"{exp_dir} already exists: pass --resume to finish that sweep, or another --name")
    space = load_space(opts.space)
    base = find_file(opts.config, "--config") if opts.config else space.config
    fixed = {**space.overrides, **dict(parse_override(o) for o in opts.overrides)}
    cfg = load_config(base, fixed)  # validates the flags before anything starts
    settings = SweepSettings(
        space=str(space.path),
        base_config=str(base),
        overrides=fixed,
        paths=absolute_paths(cfg),
        num_samples=space.num_samples if opts.num_samples is None else opts.num_samples,
        select_by=opts.select_by or space.select_by or cfg.select.by,
        seed=0 if opts.seed is None else opts.seed,
        max_concurrent=opts.max_concurrent or 0,
        max_failures=0 if opts.max_failures is None else opts.max_failures,
    )
    return exp_dir, settings


@dataclass
class Replay:
    """An earlier finished sweep with the same settings, to be replayed: its trials' parameters in the
    order Optuna proposed them, and where each unfinished one ended (ASHA's stop)."""

    source: Path
    points: list[dict[str, Any]]  # sampled parameters of each trial, inactive ones left out
    ends: dict[str, int]  # params_id -> last progress, for the trials that did not finish


def find_replay(storage: Path, settings: SweepSettings, max_t: int) -> Replay | None:
    """The newest finished sweep under `storage` (its summary was written: trials.csv) whose sweep.json
    equals `settings`, as a Replay; None when there is none."""
    import optuna
    from ray.tune import ExperimentAnalysis

    from symda.sweeps.trial import params_id

    for summary in sorted(storage.glob("*/trials.csv"), key=lambda p: p.stat().st_mtime, reverse=True):
        exp_dir = summary.parent
        try:
            if SweepSettings.load(exp_dir / SETTINGS_FILE) != settings:
                continue
        except (OSError, TypeError, ValueError):
            continue
        study = optuna.load_study(study_name=exp_dir.name, storage=f"sqlite:///{exp_dir / 'optuna.db'}")
        points = [dict(t.params) for t in sorted(study.trials, key=lambda t: t.number)]
        ends = {}
        for trial in ExperimentAnalysis(str(exp_dir)).trials:
            last = trial.last_result or {}
            if not last.get("finished") and last.get("progress", 0) < max_t:
                ends[params_id(trial.config)] = int(last.get("progress", 0))
        if len(points) == settings.num_samples:
            return Replay(exp_dir, points, ends)
    return None


def _check(space: SweepSpace, settings: SweepSettings) -> ExperimentConfig:
    """The base config with the fixed overrides, after the checks no trial should have to discover."""
    cfg = load_config(settings.base_config, settings.trial_overrides())
    check_space(space, Path(settings.base_config), settings.trial_overrides())
    if settings.num_samples <= 0:
        raise SweepError(f"--num-samples: must be > 0, got {settings.num_samples}")
    need = NEEDS.get(settings.select_by)
    if need == "partner" and not cfg.adapt.symmetric:
        raise SweepError(f"--select-by {settings.select_by} needs F_S (adapt.symmetric true): it scores F_T "
                         "against its partner F_S")  # fmt: skip
    if need == "source_holdout" and not cfg.data.source_holdout:
        raise SweepError(f"--select-by {settings.select_by} needs held-out source images: set "
                         "data.source_holdout (e.g. --set data.source_holdout=100)")  # fmt: skip
    if total_progress(cfg) > space.max_t:
        raise ConfigError(
            f"{space.path}: max_t: {space.max_t} is shorter than the base config's self-training "
            f"({total_progress(cfg)} steps = self_train.rounds x self_train.steps): ASHA would stop every "
            "trial before its final evaluation"
        )
    # Before Ray starts: the trials' shared store and their weights file (the sweep's folder: run_sweep).
    check_writable(Path(cfg.artifacts_dir), "artifacts_dir")
    check_model_weights(cfg)
    return cfg


# ---------------------------------------------------------------------------------------- the driver


def _upstream_report(record: Any, checkpoint: Path | None = None) -> None:
    """One short line per stage report while the upstream builds (every log_every steps)."""
    shown = {k: v for k, v in dict(record).items() if isinstance(v, int | float | str) and k != "stage"}
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    print(f"[upstream {record.get('stage') or '?'}] {text}", flush=True)


def run_sweep(opts: SweepOptions) -> SweepSummary:
    """Run (or with opts.resume finish) a sweep and return its summary; see the module docstring."""
    # Snapshot the experiment state every second: after a SIGKILL of this driver, --resume then
    # reruns no finished trial (with the default >= 10 s some did, under new ids).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the CLIReporter table; the new output ignores it
    exp_dir, settings = _resolve(opts)
    space = load_space(settings.space)
    cfg = _check(space, settings)
    check_writable(exp_dir, "--storage")

    dashboard = connect(opts.address)
    import ray

    request, need = trial_resources(cfg)
    cluster = ray.cluster_resources()
    check_cluster(need, cluster, cfg)
    max_concurrent = settings.max_concurrent or default_concurrency(need, cluster)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if not (exp_dir / SETTINGS_FILE).is_file():
        settings.save(exp_dir / SETTINGS_FILE)
    print(f"sweep {exp_dir.name}: {settings.num_samples} trials of {space.path.name}, {max_concurrent} at a time, "
          f"each {request}; selecting by {settings.select_by}", flush=True)  # fmt: skip
    print(f"Ray dashboard: {http(dashboard)} (a local cluster's closes when the sweep ends)" if dashboard
          else "no Ray dashboard", flush=True)  # fmt: skip

    from symda.pipeline import build_upstream

    t0 = time.perf_counter()
    keys = build_upstream(cfg, space.upstream, _upstream_report, progress=sys.stderr.isatty())
    print(f"upstream ({space.upstream}) ready in {time.perf_counter() - t0:.0f} s: {keys}", flush=True)

    replay = None if opts.resume or opts.fresh else find_replay(exp_dir.parent, settings, space.max_t)
    if replay is not None:
        print(f"replaying {replay.source.name} (the same settings): its {len(replay.points)} configurations in "
              "its order, each ending where it ended there, from the store; --fresh searches anew", flush=True)  # fmt: skip
    tuner = _tuner(space, settings, cfg, exp_dir, request, max_concurrent, replay, opts.tracker)
    tuner.fit()
    return summarize(exp_dir, space.keys, settings.select_by, settings.base_config, settings.overrides,
                     dashboard, kind=Path(settings.space).stem)  # fmt: skip


def _tuner(space: SweepSpace, settings: SweepSettings, cfg: ExperimentConfig, exp_dir: Path,
           request: dict[str, float], max_concurrent: int, replay: Replay | None = None,
           tracker: str | None = None):  # fmt: skip
    """A new Tuner (OptunaSearch + ASHA), or the interrupted one restored from exp_dir.

    With `replay`: Optuna is given the earlier sweep's configurations to evaluate first (all of them:
    num_samples is the same), and no scheduler stops trials, since each replayed trial ends where the
    earlier one ended (symda.sweeps.trial.TrialSetup.replay_ends): ASHA's decisions depend on the
    order in which concurrent trials report, so deciding again could continue a trial the first run
    stopped, which would train. A rerun then shows the first run's table without training anything.
    """
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    # The driver checked the datasets before the trials (build_upstream): each trial need not read
    # every label file again.
    overrides = {**settings.trial_overrides(), "data.check": False}
    setup = TrialSetup(settings.base_config, overrides, space.max_t,
                       threads=max(1, int(request.get("CPU", 1))), runs_dir=str(exp_dir / "runs"),
                       replay_ends=replay.ends if replay else None)  # fmt: skip
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), request)
    if tune.Tuner.can_restore(exp_dir):
        print(f"resuming {exp_dir}: finished trials are kept, unfinished ones rerun", flush=True)
        return tune.Tuner.restore(str(exp_dir), trainable, resume_unfinished=True, resume_errored=False)
    metric = settings.select_by
    searcher = OptunaSearch(
        space=DefineByRun(space.params),
        metric=metric,  # OptunaSearch ignores TuneConfig's metric/mode once it has a space
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=space.n_startup_trials),
        study_name=exp_dir.name,
        storage=optuna.storages.RDBStorage(f"sqlite:///{exp_dir / 'optuna.db'}"),
        points_to_evaluate=replay.points if replay else None,
    )
    reporter = sweep_reporter(
        metric_columns=list(dict.fromkeys(["progress", "miou", settings.select_by])),
        parameter_columns=space.keys,
        sort_by_metric=True,  # by TuneConfig's metric
        print_intermediate_tables=True,  # one table a minute while trials run (verbose=1 alone: none)
        max_report_frequency=60,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode="max",
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
            scheduler=FIFOScheduler()
            if replay
            else ASHAScheduler(
                time_attr="progress",
                max_t=space.max_t,
                grace_period=space.grace_period,
                reduction_factor=space.reduction_factor,
            ),  # fmt: skip
            num_samples=settings.num_samples,
            # One trial's process takes the next trial: no Ray worker start and no torch import per
            # trial. Trials share nothing else (each seeds its stages and builds its own datasets).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            storage_path=str(exp_dir.parent),
            name=exp_dir.name,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            progress_reporter=reporter,
            verbose=1,
            callbacks=tune_callbacks(tracker, exp_dir, exp_dir.name),
        ),
    )


def main(argv: list[str] | None = None, default_space: str = "configs/sweeps/threshold.yaml") -> int:
    """Entry point of the tune/sweep_*.py scripts. Bad input ends with one message and exit status 2."""
    import logging

    from symda.data.dataset import DatasetError

    # The stages' own lines (which artifact is built or reused), as `symda run` shows them.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("symda").setLevel(logging.INFO)
    opts = parse_args(argv, default_space)
    try:
        summary = run_sweep(opts)
    except (ConfigError, SweepError, DatasetError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    report_unfinished_builds(summary.exp_dir)
    write_sweep_report(summary.exp_dir)
    return 0


def write_sweep_report(exp_dir: Path) -> Path | None:
    """The finished sweep's report (symda.reports.sweep_report: plots and report.md in exp_dir/report),
    and where it is; a failure is a warning, the sweep stands (None)."""
    from symda.reports.sweep_report import report

    out = exp_dir / "report"
    try:
        path = report(exp_dir.resolve(), out, "miou", None)
    except Exception as err:  # noqa: BLE001  (a report must never fail a finished sweep)
        print(f"\nwarning: the sweep report failed ({type(err).__name__}: {err}); rerun: "
              f"python analysis/sweep_report.py {exp_dir}")  # fmt: skip
        return None
    plots = sorted(p.name for p in out.glob("*.png"))
    print(f"\nplots: {path} ({', '.join(plots)})")
    return path


def report_unfinished_builds(exp_dir: Path) -> None:
    """One line on the store's interrupted builds (ASHA-stopped trials leave their self-training's work
    folder: a rerun of the same trial resumes from it) and the command that lists or removes them."""
    from symda.artifacts import ArtifactStore

    settings = SweepSettings.load(exp_dir / SETTINGS_FILE)
    store_dir = settings.paths.get("artifacts_dir")
    if not store_dir:
        return
    idle = [b for b in ArtifactStore(store_dir).unfinished() if not b.busy]
    if idle:
        mb = sum(b.bytes for b in idle) / 2**20
        print(f"\nthe store holds {len(idle)} interrupted builds ({mb:.0f} MB; a rerun of their trials resumes them): "
              f"list them with `symda store gc --set artifacts_dir={store_dir}`, delete them with --remove")  # fmt: skip
