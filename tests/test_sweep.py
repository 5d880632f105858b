"""Sweeps: space files, the trial's reports, and real Tune + OptunaSearch + ASHA sweeps on tiny data.

The sweeps share one Ray session (conftest.ray_session) and one artifact store, so the upstream
(translator, S'/T'/V', F_T, F_S) is built once for the module; a tiny trial takes a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from symda.config import ConfigError, apply_overrides, load_config
from symda.select import DEFAULT_VALIDATOR, VALIDATORS
from symda.sweeps.driver import (
    SweepError,
    SweepOptions,
    check_cluster,
    default_concurrency,
    load_space,
    main,
    run_sweep,
    trial_resources,
    tune_result,
    write_sweep_report,
)
from symda.sweeps.space import REPO_ROOT, DefineByRun, check_space
from tests.conftest import write_cityscapes, write_gta5

TINY = {
    "translate.g_conv_dim": 8, "translate.g_repeat_num": 1, "translate.d_conv_dim": 8, "translate.d_repeat_num": 2,
    "translate.load_size": [32, 64], "translate.image_size": [16, 32], "translate.batch_size": 2,
    "translate.generator_steps": 2, "translate.n_critic": 1, "data.source_size": [32, 64], "data.target_size": [32, 64],
    "train.steps": 3, "train.batch_size": 2, "train.log_every": 2, "train.eval_every": 2, "train.checkpoint_every": 2,
    "adapt.adversarial.d_channels": 8, "eval.batch_size": 4, "self_train.steps": 4, "self_train.paths": "T",
}  # fmt: skip
THRESHOLD_SPACE = {
    "pseudo.threshold": {"choice": ["global", "class_quantile"]},
    "pseudo.tau": {"uniform": [0.3, 0.9], "when": {"pseudo.threshold": "global"}},
    "pseudo.quantile": {"uniform": [0.2, 0.8], "when": {"pseudo.threshold": "class_quantile"}},
    "pseudo.conf_weight": {"uniform": [0.0, 1.0]},
}


@pytest.fixture(scope="module")
def base_config(tmp_path_factory) -> Path:
    """A tiny experiment (tiny GTA5/Cityscapes layouts, 4 self-training steps, evaluation every 2) with
    one artifact store for the whole module."""
    root = tmp_path_factory.mktemp("sweep_data")
    paths = {"data.source_root": str(write_gta5(root / "gta5", 12)),
             "data.target_root": str(write_cityscapes(root / "cityscapes", 8, 4)),
             "artifacts_dir": str(root / "store")}  # fmt: skip
    path = root / "base.yaml"
    path.write_text(yaml.safe_dump(apply_overrides({}, {**TINY, **paths})))
    return path


def write_space(path: Path, base: Path, space: dict, **top) -> Path:
    """A space file: 3 random trials (n_startup_trials = num_samples keeps the sampled values a
    function of the seed alone, whatever order trials finish in), ASHA over 4 self-training steps."""
    data = {"config": str(base), "upstream": "adapt", "num_samples": 3, "n_startup_trials": 3, "max_t": 4,
            "grace_period": 2, "space": space, **top}  # fmt: skip
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ spaces (no Ray needed)


def test_space_loading_and_conditional_parameters(base_config, tmp_path):
    import optuna

    space = load_space(write_space(tmp_path / "s.yaml", base_config, THRESHOLD_SPACE))
    assert space.keys == list(THRESHOLD_SPACE) and space.max_t == 4 and space.upstream == "adapt"
    check_space(space, base_config, {})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = DefineByRun(space.params)
    seen = set()
    for _ in range(12):
        trial = study.ask()
        inactive = fn(trial)
        threshold = trial.params["pseudo.threshold"]
        seen.add(threshold)
        assert ("pseudo.tau" in trial.params) == (threshold == "global")
        assert ("pseudo.quantile" in trial.params) == (threshold == "class_quantile")
        assert set(inactive) == set(THRESHOLD_SPACE) - set(trial.params)  # the rest, as None
        study.tell(trial, 0.0)
    assert seen == {"global", "class_quantile"}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"pseudo.tua": {"uniform": [0.5, 0.9]}}, "space.pseudo.tua: unknown config key"),
        ({"pseudo.tau": {"gaussian": [0.5, 0.9]}}, "space.pseudo.tau: unknown distribution 'gaussian'"),
        ({"pseudo.tau": {"uniform": [0.9, 0.5]}}, "space.pseudo.tau: uniform: expected finite low < high"),
        ({"pseudo.bins": {"int": [10, 20.5]}}, "space.pseudo.bins: int: expected [low, high] integers"),
        (
            {"pseudo.tau": {"uniform": [0.5, 0.9], "when": {"pseudo.cap": 0.9}}},
            "'pseudo.cap' is not a parameter",
        ),
        ({"scale.num_workers": {"int": [1, 2]}}, "scale.* decides each trial's resources"),
    ],
)
def test_bad_space_entries_name_the_key_and_file(base_config, tmp_path, entry, expected):
    path = write_space(tmp_path / "bad.yaml", base_config, entry)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_the_command_line_refuses_bad_input_before_starting_anything(base_config, tmp_path, capsys):
    bad = write_space(tmp_path / "bad.yaml", base_config, {"pseudo.tua": {"uniform": [0.5, 0.9]}})
    assert main(["--space", str(bad), "--storage", str(tmp_path)]) == 2
    assert f"{bad}: space.pseudo.tua: unknown config key" in capsys.readouterr().err
    assert main(["--resume", "--seed", "1", "--storage", str(tmp_path)]) == 2
    assert "drop --seed" in capsys.readouterr().err
    good = write_space(tmp_path / "good.yaml", base_config, THRESHOLD_SPACE)
    assert main(["--space", str(good), "--set", "pseudo.cap=2", "--storage", str(tmp_path)]) == 2
    assert "pseudo.cap: must be in [0, 1], got 2" in capsys.readouterr().err
    assert not list(tmp_path.glob("*-*/"))  # no sweep folder: nothing was started


def test_sampled_values_must_pass_the_config_validation(base_config, tmp_path):
    path = write_space(tmp_path / "s.yaml", base_config, {"pseudo.tau": {"uniform": [0.5, 1.5]}})
    with pytest.raises(ConfigError, match=r"s\.yaml: space\.pseudo\.tau: uniform value 1\.5 .*\[0, 1\]"):
        check_space(load_space(path), base_config, {})


def test_tune_result_relays_self_training_evaluations():
    cfg = load_config(overrides={"self_train.steps": 4, "self_train.rounds": 2})
    from symda.records import Evaluation, RunResult, StepLog

    def evaluation(stage: str, step: int, miou: float, **validators) -> Evaluation:
        return Evaluation(step, miou, 0.5, {}, validators, stage=stage)

    assert tune_result(evaluation("F_T_r0", 2, 5.0), cfg, 8) is None  # adaptation
    assert tune_result(StepLog(2, {"loss": 1.0}, "F_T_r1"), cfg, 8) is None  # no evaluation
    r = tune_result(evaluation("F_T_r2", 2, 5.0, agreement=0.7), cfg, 8)
    assert r["progress"] == 6 and r["miou"] == 5.0 and r["agreement"] == 0.7 and not r["finished"]
    assert set(VALIDATORS) <= set(r)
    assert math.isnan(tune_result(evaluation("F_T_r1", 2, 1.0), cfg, 8)["agreement"])
    assert tune_result(evaluation("F_T_r2", 4, 5.0), cfg, 8) is None  # = the result
    scores = {name: i / 10 for i, name in enumerate(VALIDATORS)}
    final = RunResult(6.0, 0.4, 7.0, scores)
    assert tune_result(final, cfg, 8) == {"progress": 8, "miou": 6.0, "miou_se": 0.4, "miou_fused": 7.0, **scores,
                                          "finished": True}  # fmt: skip


def test_resources_per_trial_and_a_gpu_sweep_on_a_cpu_cluster():
    cpu = load_config()
    assert trial_resources(cpu) == ({"CPU": 1.0}, {"CPU": 1.0})
    assert default_concurrency({"CPU": 1.0}, {"CPU": 2.0}) == 2
    train = load_config(overrides={"scale.num_workers": 2, "scale.use_gpu": True})
    request, need = trial_resources(train)
    assert request == {"CPU": 0.0, "train_driver": 1.0} and need == {"CPU": 2.0, "GPU": 2.0}
    with pytest.raises(SweepError, match=r"needs 2 GPU .*scale.use_gpu=True.* has 0 GPU"):
        check_cluster(need, {"CPU": 16.0, "train_driver": 2.0}, train)


# ------------------------------------------------------------------------------- sweeps through Ray


def test_three_trial_sweep(ray_session, base_config, tmp_path, capsys):
    space = write_space(tmp_path / "threshold.yaml", base_config, THRESHOLD_SPACE)
    summary = run_sweep(
        SweepOptions(space=str(space), storage=str(tmp_path / "sweeps"), name="three", tracker="mlflow")
    )
    table = summary.table
    assert len(table) == 3 and set(table["status"]) == {"TERMINATED"}
    assert {"trial_id", *THRESHOLD_SPACE, "miou", "miou_fused", *VALIDATORS} <= set(table.columns)
    finished = table[table["finished"]]
    assert (
        len(finished) >= 1
        and finished["miou"].between(0, 100).all()
        and finished["agreement"].between(0, 1).all()
    )
    # Selected by the config's select.by (the validator study's winner), sorted by it.
    assert summary.select_by == DEFAULT_VALIDATOR
    assert finished[DEFAULT_VALIDATOR].is_monotonic_decreasing
    # The spread is judged over all three trials at the deepest progress every one of them reached.
    assert summary.rung == table["progress"].min() > 0 and summary.rung_spread["n"] == 3
    best = load_config(summary.best_config)  # a ready-to-use config
    row = finished.iloc[0]
    assert (
        best.pseudo.threshold == row["pseudo.threshold"]
        and best.pseudo.conf_weight == row["pseudo.conf_weight"]
    )
    assert best.train.steps == 3 and best.data.source_size == (32, 64)
    # The upstream was built once, before the trials: every trial used the same round-0 networks.
    records = [
        json.loads((summary.exp_dir / "runs" / t / "result.json").read_text()) for t in finished["trial_id"]
    ]
    assert len({r["artifacts.F_T_r0"] for r in records}) == 1
    import optuna

    study = optuna.load_study(study_name="three", storage=f"sqlite:///{summary.optuna_db}")
    assert len(study.trials) == 3 and "pseudo.threshold" in study.trials[0].params
    out = capsys.readouterr().out
    assert "Ray dashboard: http://" in out and "Trial name" in out  # the progress table
    assert "Result logdir" not in out  # Ray's staging folder, not where results are
    # Every trial self-trains from one adapted F_T: its score is in every record and in the summary.
    assert table["start_miou"].notna().all() and table["start_miou"].nunique() == 1
    assert all(r["round0.miou"] == table["start_miou"].iloc[0] for r in records)
    from symda.sweeps.summary import start_line

    assert "the adapted F_T every trial self-trains from (round 0)" in start_line(table)
    assert (finished["gain"] == finished["miou"] - finished["start_miou"]).all()
    # The trackers a researcher opens: optuna-dashboard serves the study, every trial's TensorBoard
    # log holds its self-training curve, MLflow (--tracker) a run per trial, and the report its plots.
    assert_dashboard_serves_trials(summary.optuna_db, "three", 3)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial in table["trial_id"]:
        events = EventAccumulator(str(summary.exp_dir / "runs" / trial / "tensorboard")).Reload()
        assert "F_T_r1/val_miou" in events.Tags()["scalars"], trial
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{summary.exp_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["three"])
    assert len(runs) == 3 and runs["metrics.miou"].notna().all()
    assert write_sweep_report(summary.exp_dir) == summary.exp_dir / "report" / "report.md"
    assert (summary.exp_dir / "report" / "params.png").is_file()
    assert f"plots: {summary.exp_dir / 'report' / 'report.md'}" in capsys.readouterr().out

    # The same sweep again replays this one: its configurations, each ending where it ended, all from
    # the store; nothing is trained (no artifact built, no unfinished build written to).
    store = Path(load_config(base_config).artifacts_dir)

    def store_files() -> dict[str, float]:
        return {
            str(f): f.stat().st_mtime for f in store.rglob("*") if f.is_file() and "_ray_train" not in f.parts
        }

    before = store_files()
    again = run_sweep(SweepOptions(space=str(space), storage=str(tmp_path / "sweeps"), name="three-again"))
    assert "replaying three (the same settings)" in capsys.readouterr().out
    assert store_files() == before

    def by_params(t):
        def key(row):
            return "|".join("" if v is None or v != v else repr(v) for v in row)  # v != v: NaN

        return t.assign(key=t[list(THRESHOLD_SPACE)].apply(key, axis=1)).set_index("key")

    first, second = by_params(table), by_params(again.table)
    assert sorted(first.index) == sorted(second.index)
    for column in ("miou", "progress", "finished"):
        assert first[column].to_dict() == second.loc[first.index, column].to_dict(), column


def assert_dashboard_serves_trials(db: Path, study_name: str, n_trials: int) -> None:
    """Start `optuna-dashboard sqlite:///db` as a user would and find the study's trials over HTTP."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(Path(sys.executable).parent / "optuna-dashboard"), f"sqlite:///{db}", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.loads(r.read())["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "optuna-dashboard did not start"
                time.sleep(0.5)
        study = next(s for s in studies if s["study_name"] == study_name)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", timeout=10
        ) as r:
            trials = json.loads(r.read())["trials"]
        assert len(trials) == n_trials and all("params" in t for t in trials)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_failing_trial_is_recorded_and_the_sweep_goes_on(ray_session, base_config, tmp_path):
    # pseudo_weight 1e300 makes self-training's loss infinite, then the weights NaN: FloatingPointError.
    # Seed 0 samples [1e300, 1.0, 1e300] (n_startup_trials = 3: random, in ask order).
    space = write_space(
        tmp_path / "nan.yaml", base_config, {"self_train.pseudo_weight": {"choice": [1.0, 1.0e300]}}
    )
    summary = run_sweep(SweepOptions(space=str(space), storage=str(tmp_path / "sweeps"), name="nan"))
    table = summary.table
    assert len(table) == 3
    bad = table["self_train.pseudo_weight"] > 1
    assert bad.any() and (~bad).any(), "seed 0 no longer samples both values: pick another --seed"
    assert set(table[bad]["status"]) == {"ERROR"} and set(table[~bad]["status"]) == {"TERMINATED"}
    assert table[bad]["error"].str.contains("FloatingPointError: non-finite training loss").all()
    assert table.iloc[-1]["status"] == "ERROR"  # errored trials are listed last
    assert summary.best_config is not None


def test_killed_sweep_resumes_without_rerunning_finished_trials(ray_session, base_config, tmp_path):
    """SIGKILL the driver (a subprocess joined to the session's cluster) after 2 of 3 trials finished;
    --resume finishes the sweep without running them again. The dashboard answers meanwhile."""
    space = write_space(tmp_path / "threshold.yaml", base_config, THRESHOLD_SPACE)
    storage, name = tmp_path / "sweeps", "killed"
    cmd = [
        sys.executable,
        "tune/sweep_threshold.py",
        "--space",
        str(space),
        "--storage",
        str(storage),
        "--name",
        name,
        "--max-concurrent",
        "1",
        "--address",
        ray_session.address_info["gcs_address"],
        "--select-by",
        "miou",
    ]  # fmt: skip  (which trials ASHA lets finish depends on the metric: 2 must)
    driver = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exp_dir = storage / name
    dashboard = f"http://{ray_session.dashboard_url}"
    version = None
    try:
        deadline = time.monotonic() + 300
        while len(finished_trials(exp_dir) or {}) < 2:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "2 trials did not finish within 300 s"
            if version is None and finished_trials(exp_dir) is not None:
                with urllib.request.urlopen(f"{dashboard}/api/version", timeout=5) as r:
                    version = json.loads(r.read())
            time.sleep(0.3)
        time.sleep(2.5)  # > TUNE_GLOBAL_CHECKPOINT_S=1: the experiment state knows both are done
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    assert version is not None and version["ray_version"]
    done = finished_trials(exp_dir)
    stamps = {t: (exp_dir / "runs" / t / "result.json").stat().st_mtime_ns for t in done}

    summary = run_sweep(SweepOptions(space=str(space), storage=str(storage), name=name, resume=True))
    table = summary.table
    assert len(table) == 3 and set(table["status"]) == {"TERMINATED"}
    assert set(done) <= set(table["trial_id"])
    for t in done:  # not run again: their run records are untouched, their Tune results not repeated
        assert (exp_dir / "runs" / t / "result.json").stat().st_mtime_ns == stamps[t]
        assert finished_trials(exp_dir)[t] == 1


def finished_trials(exp_dir: Path) -> dict[str, int] | None:
    """{trial id: number of final results} from Tune's per-trial result.json (None before any trial)."""
    files = list(exp_dir.glob("run_trial_*/result.json"))
    if not files:
        return None
    out = {}
    for f in files:
        lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        finals = [r for r in lines if r.get("finished")]
        if finals:
            out[finals[0]["trial_id"]] = len(finals)
    return out


def test_a_gpu_sweep_on_a_cpu_cluster_fails_before_starting(ray_session, base_config, tmp_path):
    space = write_space(tmp_path / "threshold.yaml", base_config, THRESHOLD_SPACE)
    opts = SweepOptions(space=str(space), storage=str(tmp_path / "sweeps"), name="gpu",
                        overrides=["scale.use_gpu=true"])  # fmt: skip
    with pytest.raises(SweepError, match="GPU"):
        run_sweep(opts)
    assert not (tmp_path / "sweeps" / "gpu").exists()


def test_trial_spread_sets_the_trials_against_the_evaluation_noise():
    import pandas as pd

    from symda.sweeps.summary import trial_spread

    done = pd.DataFrame({"miou": [20.0, 21.0, 23.0], "miou_se": [0.5, 0.7, 0.6]})
    expected = {"n": 3, "min": 20.0, "max": 23.0, "std": 1.5275252, "noise": 0.6}
    assert trial_spread(done) == pytest.approx(expected)
    empty = trial_spread(done.iloc[:0])
    assert empty.pop("n") == 0 and all(math.isnan(v) for v in empty.values())


def test_rung_scores_take_every_trial_at_the_deepest_progress_all_reached():
    import pandas as pd

    from symda.sweeps.summary import rung_scores

    def history(mious):
        return pd.DataFrame({"progress": [50, 100, 150][: len(mious)], "miou": mious, "miou_se": 0.5})

    rung, scores = rung_scores({"a": history([18.0, 19.0, 21.0]), "b": history([20.0, 21.5]),
                                "c": history([19.5, 20.5])})  # fmt: skip
    assert rung == 100 and scores["miou"].to_dict() == {"a": 19.0, "b": 21.5, "c": 20.5}
    rung, scores = rung_scores({})
    assert rung == 0 and scores.empty


def test_the_summary_judges_the_spread_only_with_two_finished_trials(tmp_path, capsys):
    import pandas as pd

    from symda.sweeps.summary import SweepSummary, print_summary, trial_spread

    def summary(miou):
        table = pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(miou))], "status": "TERMINATED",
                              "miou": miou, "miou_se": 0.6, "finished": True, "error": ""})  # fmt: skip
        spread = trial_spread(table)
        return SweepSummary(tmp_path, table, "miou", {}, {}, spread, spread, len(miou), None, tmp_path / "o.db", "",
                            rung=50)  # fmt: skip

    print_summary(summary([21.3]))
    assert "the 1 finished trials: too few" in capsys.readouterr().out
    print_summary(summary([20.0, 20.5]))
    out = capsys.readouterr().out
    assert "all 2 trials at progress 50 (the deepest all reached): miou spans 20.00 to 20.50" in out
    assert "within the noise" in out
    print_summary(summary([20.0, 22.0]))
    out = capsys.readouterr().out
    assert "the sweep can tell them apart" in out
    # Where the study is, once; no dashboard address after the sweep (a local dashboard has gone).
    assert out.count("optuna-dashboard --host 127.0.0.1 sqlite:///") == 1 and "Ray dashboard" not in out


def test_the_summary_says_how_each_validator_would_have_chosen(tmp_path, monkeypatch):
    import pandas as pd

    import symda.sweeps.summary as summary_mod

    rows = [dict(trial_id=f"t{i}", status="TERMINATED", miou=20.0 + i, miou_se=0.5, miou_fused=20.0, finished=True,
                 error="", progress=150, **{v: float("nan") for v in VALIDATORS}) for i in range(4)]  # fmt: skip
    for i, row in enumerate(rows):
        row.update(entropy=i / 10, agreement=-i / 10)  # entropy ranks them right, agreement backwards
        row["pseudo.tau"] = 0.996 - i / 10
    table = pd.DataFrame(rows).iloc[::-1]  # ordered by select_by, as trials_table orders it
    histories = {r["trial_id"]: pd.DataFrame([{**r, "progress": 50}]) for r in rows}
    monkeypatch.setattr(summary_mod, "trials_table", lambda *a: (table, histories))
    study = tmp_path / "study.json"
    study.write_text(json.dumps({"pooled": {"entropy": {"rho": 0.5, "regret1": 1.25}}}))
    monkeypatch.setattr(summary_mod, "STUDY_FILE", study)
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"threshold": {"pooled": {"entropy": {"rho": 0.8, "regret1": 0.2}},
                                                   "ranges": {"pseudo.tau": [0.5, 0.93]}}}))  # fmt: skip
    monkeypatch.setattr(summary_mod, "SELECTION_FILE", selection)
    s = summary_mod.summarize(
        tmp_path,
        ["pseudo.tau"],
        "entropy",
        str(REPO_ROOT / "configs" / "synthcity" / "quick.yaml"),
        {},
        kind="threshold",
    )
    assert s.pick == {"pseudo.tau": pytest.approx(0.696)}  # t3, the best by entropy
    assert s.validators["entropy"]["rho"] == pytest.approx(1.0) and s.validators["entropy"]["regret"] == 0.0
    assert (
        s.validators["agreement"]["rho"] == pytest.approx(-1.0) and s.validators["agreement"]["regret"] == 3.0
    )
    assert s.validators["agreement"]["regret_rung"] == 3.0  # the same trials at progress 50
    text = summary_mod.validator_lines(s)
    assert "entropy" in text and "<- selected by" in text
    assert (
        "expected regret of picking by entropy (validator study, top-1, mean over its seeds): 1.25 mIoU"
        in text
    )
    assert math.isnan(s.validators["snd"]["rho"]) and "n/a" in text
    assert "WARNING" not in text  # the pick's tau lies within what the selection study scored
    s.pick = {"pseudo.tau": 0.996}
    assert "WARNING: the pick sets pseudo.tau 0.996 (studied 0.5 to 0.93)" in summary_mod.validator_lines(s)


def test_the_summary_names_the_trials_whose_translator_learned_the_identity(tmp_path):
    import pandas as pd

    from symda.sweeps.summary import translation_line, translator_identity

    records = {}
    for trial, identity in (("a", True), ("b", False)):
        records[trial] = tmp_path / f"{trial}.json"
        records[trial].write_text(json.dumps({"miou": 20.0, "translation.identity": identity}))
    (tmp_path / "old.json").write_text(json.dumps({"miou": 20.0}))  # a run from before the check
    assert [translator_identity(str(records[t])) for t in "ab"] == [True, False]
    assert translator_identity(str(tmp_path / "old.json")) is None
    assert translator_identity(str(tmp_path / "gone.json")) is None and translator_identity(None) is None
    table = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "finished": [True, True, True, False],
                          "translator_identity": [True, False, None, True]})  # fmt: skip
    assert translation_line(table) == (
        "\nWARNING: the translator of 1 of the 3 finished trials learned the identity (S' = S; "
        "symda.translate.apply.IDENTITY_CHANGE): a; they adapted without translation"
    )
    assert translation_line(table.assign(translator_identity=[False, False, None, True])) == ""
    assert translation_line(table.drop(columns=["translator_identity"])) == ""


def test_the_summary_says_where_the_trials_started_and_what_each_gained():
    import pandas as pd

    from symda.sweeps.summary import start_line

    table = pd.DataFrame({"miou": [21.5, 19.0, 20.3, 18.0], "miou_se": 0.6, "start_miou": 20.0,
                          "start_miou_fused": 20.7, "finished": [True, True, True, False]})  # fmt: skip
    table["gain"] = table["miou"] - table["start_miou"]
    line = start_line(table)
    assert "(round 0): 20.00 mIoU (20.70 fused)" in line
    assert (
        "of the 3 finished trials, 1 end above it by more than their evaluation noise, 1 below it, 1 within"
        in line
    )
    assert "not reported" in start_line(table.drop(columns=["start_miou"]))


def test_a_sweep_killed_at_random_moments_ends_as_an_uninterrupted_one(ray_session, base_config, tmp_path):
    """bench/bench_kill_sweep.py's check (K >= 20 there) with 2 seeded random moments: the driver (a
    subprocess joined to the session's cluster) SIGKILLed, then finished with --resume (the same
    command before the sweep had begun); each trial's final results and its status, mIoU and progress
    equal an uninterrupted sweep's. Both share the module's store (the bench gives each its own): here
    it is the driver's state that is killed and resumed."""
    import importlib.util
    import random

    path = REPO_ROOT / "bench" / "bench_kill_sweep.py"
    spec = importlib.util.spec_from_file_location("bench_kill_sweep", path)
    harness = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    space = write_space(tmp_path / "threshold.yaml", base_config, THRESHOLD_SPACE)
    storage, address = tmp_path / "sweeps", ray_session.address_info["gcs_address"]

    def command(name: str, resume: bool) -> list[str]:
        cmd = [
            sys.executable,
            "tune/sweep_threshold.py",
            "--storage",
            str(storage),
            "--name",
            name,
            "--address",
            address,
        ]
        return [*cmd, "--resume"] if resume else [*cmd, "--space", str(space), "--max-concurrent", "1", "--select-by",
                                                  "miou", "--fresh"]  # fmt: skip

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO_ROOT}
    t0 = time.monotonic()
    subprocess.run(command("straight", False), check=True, **quiet)
    seconds = time.monotonic() - t0
    reference = harness.table(storage / "straight")
    counts = sorted(finished_trials(storage / "straight").values())
    # The first moment within the whole sweep's span, the second within what is left after a resume.
    rng, resume, kills = random.Random(0), False, 0
    moments = [rng.uniform(0.2, 0.6) * seconds, rng.uniform(0.05, 0.25) * seconds]
    while True:
        driver = subprocess.Popen(command("killed", resume), start_new_session=True, **quiet)
        try:
            driver.wait(timeout=moments[kills] if kills < len(moments) else 600)
            assert driver.returncode == 0
            break
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            kills, resume = kills + 1, (storage / "killed" / "sweep.json").is_file()
    assert kills >= 1
    assert harness.compare(storage / "killed", reference, counts) == []
