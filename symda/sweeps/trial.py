"""The trial of every sweep: one whole-method run, its evaluations relayed to Ray Tune.

`run_trial` is the Tune function trainable (it must live in the package: Ray workers import it by
name). It builds the trial's ExperimentConfig (base config + fixed overrides + sampled params) and
calls `symda.pipeline.run_experiment`, whose stages come from the artifact store when the sweep's
driver built them before. `tune_result` turns the run's reports into Tune results: this is the only
place that knows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig, load_config, stage_train_config
from symda.records import Evaluation, NetworkId, Record, RunResult
from symda.select import VALIDATORS


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares; passed to `run_trial` through tune.with_parameters."""

    base_config: str  # absolute path of the base experiment YAML
    overrides: dict[str, Any]  # fixed --set values, with every path made absolute
    max_t: int  # ASHA's max_t: the "progress" of a trial's final result
    threads: int  # torch threads = the CPUs each trial holds
    runs_dir: str  # each trial's run folder is runs_dir/<trial id>
    # Replaying an earlier sweep: {params_id(params): the progress where that trial ended}. A trial
    # whose params are in it ends there (its stages come from the store: it trains nothing).
    replay_ends: dict[str, int] | None = None


def params_id(params: dict[str, Any]) -> str:
    """A trial's sampled parameters (inactive ones left out) as one comparable string."""
    import json

    return json.dumps({k: v for k, v in sorted(params.items()) if v is not None}, sort_keys=True)


# The network outputs the trials this process runs in turn share (Ray reuses a trial's actor for the
# next): they all label T with the same round-0 networks and score beside the same F_S
# (symda.pipeline.memo). A module global because a function trainable keeps nothing else between trials.
TRIAL_MEMOS = None


class _ReplayEnd(Exception):
    """Raised by a replayed trial's report at the progress where the earlier sweep's trial ended."""


def trial_config(setup: TrialSetup, params: dict[str, Any], name: str) -> ExperimentConfig:
    """The trial's experiment: base YAML + fixed overrides + sampled params (validated by load_config)."""
    return load_config(setup.base_config, {**setup.overrides, **params, "name": name})


def self_train_steps(cfg: ExperimentConfig) -> int:
    """Steps of one self-training round."""
    return stage_train_config(cfg, 1).steps


def total_progress(cfg: ExperimentConfig) -> int:
    """Self-training steps of the whole run: what "progress" reaches at the end."""
    return cfg.self_train.rounds * self_train_steps(cfg) if cfg.self_train.enabled else 0


def tune_result(record: Record, cfg: ExperimentConfig, max_t: int) -> dict[str, Any] | None:
    """The Tune result for one run_experiment report, or None for reports Tune does not need.

    Relayed: F_T's Evaluations during self-training (stage "F_T_r<round>", round >= 1) and the final
    RunResult. The metrics are the *current* values, not a
    best-so-far. Optuna is told a trial's last value: for a finished trial that is its final network,
    which is what its config delivers when rerun (its last, or with select.keep_checkpoints its
    selected checkpoint); for a trial ASHA
    stopped it is its value at the rung where it lost, already judged against its peers at the same
    progress, so TPE rightly files it among the worse. A best-so-far would credit a config with a
    transient peak of a noisy 100-image evaluation that its final network does not keep.
    """
    nan = float("nan")
    if isinstance(record, RunResult):
        return {"progress": max_t, "miou": record.miou, "miou_se": record.miou_se, "miou_fused": record.miou_fused,
                **{name: record.validators.get(name, nan) for name in VALIDATORS}, "finished": True}  # fmt: skip
    network = NetworkId.parse(record.stage)
    if not isinstance(record, Evaluation) or network is None or network.path != "T" or network.round == 0:
        return None
    round_ = network.round
    progress = (round_ - 1) * self_train_steps(cfg) + record.step
    if progress >= max_t:
        # The last evaluation of the run: the "result" record follows with the same F_T and the fused
        # score, and ASHA would stop the trial here at max_t, before it.
        return None
    scores = {name: record.validators.get(name, nan) for name in VALIDATORS}  # NaN where the run has no input
    return {"progress": progress, "round": round_, "miou": record.miou, "miou_se": record.miou_se, **scores,
            "finished": False}  # fmt: skip


def start_scores(record: Record) -> dict[str, float]:
    """{start_miou, start_miou_fused} from an evaluation of the adapted F_T (F_T_r0; its last one is the
    network every self-training round of the trial starts from), else {}."""
    network = NetworkId.parse(record.stage) if isinstance(record, Evaluation) else None
    if network is None or network.path != "T" or network.round != 0:
        return {}
    return {"start_miou": record.miou, "start_miou_fused": record.fused_or_single()[0]}


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune function trainable: one whole-method run with the sampled `config` ({dotted key: value}).

    Raises whatever the run raises (FloatingPointError for a non-finite loss), so Tune records the
    trial as ERRORED with that message and the sweep goes on. Target labels are read only by the
    run's own val evaluation.
    """
    import torch
    from ray import tune

    from symda.pipeline import Memos, run_experiment

    global TRIAL_MEMOS
    if TRIAL_MEMOS is None:
        TRIAL_MEMOS = Memos()

    # Ray sets OMP_NUM_THREADS to the task's CPUs; torch's pool is sized here, on purpose, to the CPUs
    # this trial holds, so that concurrent trials do not oversubscribe the cores.
    torch.set_num_threads(setup.threads)
    trial_id = tune.get_context().get_trial_id()
    params = {k: v for k, v in config.items() if v is not None}  # None: an inactive conditional parameter
    cfg = trial_config(setup, params, name=trial_id)
    out_dir = Path(setup.runs_dir) / trial_id

    end = (setup.replay_ends or {}).get(params_id(params))

    start: dict[str, float] = {}  # the adapted F_T's scores, which every result carries (start_miou)

    def report(record: Record, checkpoint: Path | None = None) -> None:
        start.update(start_scores(record))
        result = tune_result(record, cfg, setup.max_t)
        if result is not None:
            result.update(start)
            if result["finished"]:
                result["result_json"] = str(out_dir / "result.json")
            tune.report(result)
            if end is not None and not result["finished"] and result["progress"] >= end:
                raise _ReplayEnd  # where ASHA stopped this trial in the sweep being replayed

    try:
        run_experiment(cfg, out_dir, report, memos=TRIAL_MEMOS)
    except _ReplayEnd:
        return
