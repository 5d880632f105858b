"""symda.results.load_results and ablation_factors on small fixture folders (tests/result_fixtures.py):
train runs, run records (one of an older version), an unfinished run, and a sweep with a finished,
an errored, an early-stopped and a pending trial."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from symda.results import (
    CLASS_NAMES,
    IOU_COLUMNS,
    ResultsError,
    ablation_factors,
    load_results,
)
from symda.sweeps.space import REPO_ROOT
from tests.result_fixtures import ERROR_LINE, LADDER, OLD_RECORD, TRIALS, per_class, write_ladder, write_sweep


@pytest.fixture
def ladder(tmp_path):
    return write_ladder(tmp_path / "runs")


@pytest.fixture
def sweep(tmp_path):
    return write_sweep(tmp_path / "sweeps")


def test_run_folders_become_one_row_each(ladder):
    df = load_results(ladder).set_index("run_id")
    n_runs = sum(len(mious) for *_, mious, _ in LADDER)
    assert len(df) == n_runs + 1  # + full-s2, unfinished
    assert df.loc["source_only-s2", "miou"] == 14.0 and df.loc["source_only-s2", "kind"] == "train"
    assert df.loc["source_only-s2", "iou.road"] == per_class(14.0)["road"]  # val_per_class_iou -> iou.<class>
    assert df.loc["full-s0", "miou_fused"] == 35.0 and df.loc["full-s0", "kind"] == "run"
    assert df.loc["full-s0", "seconds.adapt"] == 10.0 and df.loc["full-s0", "pseudo_r1.coverage"] == 0.5
    assert df.loc["full-s0", "data.source_size"] == (64, 128)  # lists as tuples: groupable
    assert df.loc["oracle-s1", "data.source"] == "cityscapes" and df.loc["oracle-s1", "seed"] == 1
    assert set(df["status"]) == {"finished", "unfinished"} and df.loc["full-s2", "status"] == "unfinished"
    assert not df.loc["full-s2", "finished"] and math.isnan(df.loc["full-s2", "miou"])
    assert df["sweep"].isna().all() and df["trial_id"].isna().all()
    # the columns: per-class IoU in the field's order, named after the class
    cols = list(df.reset_index().columns)
    assert [cols.index(c) for c in IOU_COLUMNS] == sorted(cols.index(c) for c in IOU_COLUMNS)
    assert IOU_COLUMNS[0] == "iou.road" and IOU_COLUMNS[-1] == "iou.bicycle" and len(CLASS_NAMES) == 19


def test_an_older_record_loads_with_nan_for_newer_columns(ladder):
    df = load_results(ladder).set_index("run_id")
    old, new = df.loc[OLD_RECORD], df.loc["full-s0"]
    assert old["miou"] == 36.0 and old["miou_fused"] == 39.0
    for col in (
        "agreement",
        "entropy",
        "scale.precision",
        "self_train.steps",
        "record_version",
    ):
        assert math.isnan(old[col]) and not (isinstance(new[col], float) and math.isnan(new[col])), col
    # keys that moved to self_train load under their new names (symda.config.MOVED_KEYS)
    assert old["self_train.enabled"] == True and old["self_train.rounds"] == 1  # noqa: E712
    assert not {"pseudo.enabled", "pseudo.rounds", "adapt.pseudo_weight"} & set(df.columns)
    # train runs have no fused score, no proxy, no git revision: NaN, never a KeyError
    assert math.isnan(df.loc["oracle-s0", "miou_fused"]) and math.isnan(df.loc["oracle-s0", "git_revision"])


def test_a_sweep_gives_a_row_per_trial_with_status_error_and_params(sweep):
    df = load_results(sweep).set_index("trial_id")
    assert list(df.index) == list(TRIALS)
    assert (df["sweep"] == "thr").all() and (df["run_id"] == df.index).all()
    assert dict(df["status"]) == {t: v["status"] for t, v in TRIALS.items()}
    assert dict(df["pseudo.conf_weight"]) == {t: v["conf"] for t, v in TRIALS.items()}
    assert (df["swept_keys"] == "pseudo.conf_weight").all()
    finished = df[df["finished"] == True]  # noqa: E712
    assert sorted(finished.index) == ["aaaa0001", "aaaa0003", "aaaa0006"]
    assert df.loc["aaaa0003", "miou"] == 25.0 and df.loc["aaaa0003", "iou.road"] == per_class(25.0)["road"]
    assert df.loc["aaaa0003", "agreement"] == 0.75  # from the run record (written as proxy_agreement)
    # errored: its error line, its params, its whole config (from its run folder's config.yaml)
    err = df.loc["aaaa0002"]
    assert err["error"] == ERROR_LINE and math.isnan(err["miou"]) and err["train.steps"] == 7
    assert df["error"].drop("aaaa0002").isna().all()
    # stopped by ASHA: Tune's last result (proxy -> agreement), config rebuilt from sweep.json
    stopped = df.loc["aaaa0004"]
    assert stopped["miou"] == 18.0 and stopped["progress"] == 2 and stopped["agreement"] == 0.4
    assert not stopped["finished"] and stopped["train.steps"] == 7
    # pending: only the experiment state knows it
    assert df.loc["aaaa0005", "status"] == "PENDING" and df.loc["aaaa0005", "train.steps"] == 7


def test_a_sweep_without_experiment_state_infers_statuses(sweep):
    next(sweep.glob("experiment_state-*.json")).unlink()
    df = load_results(sweep).set_index("trial_id")
    assert len(df) == 5  # the pending trial had no folder
    assert df.loc["aaaa0002", "status"] == "ERROR" and df.loc["aaaa0002", "error"] == ERROR_LINE
    assert df.loc["aaaa0001", "status"] == "TERMINATED" and df.loc["aaaa0004", "status"] == "UNKNOWN"


def test_any_mix_of_paths_counts_each_run_once(ladder, sweep, tmp_path):
    trial_dir = next(sweep.glob("run_trial_aaaa0002_*"))
    df = load_results(tmp_path, ladder / "full-s0", ladder / "bdl_like-s1" / "result.json", trial_dir)
    assert len(df) == len(load_results(ladder)) + len(TRIALS)
    assert df["source"].is_unique
    one = load_results(trial_dir)
    assert list(one["trial_id"]) == ["aaaa0002"] and one["sweep"].iloc[0] == "thr"


def test_bad_paths_and_unreadable_files_name_the_file(ladder, tmp_path):
    with pytest.raises(ResultsError, match="nope: no such file"):
        load_results(tmp_path / "nope")
    with pytest.raises(ResultsError, match=r"notes\.txt: expected a result\.json"):
        (tmp_path / "notes.txt").write_text("x")
        load_results(tmp_path / "notes.txt")
    (ladder / "bdl_like-s0" / "result.json").write_text("{not json")
    with pytest.warns(UserWarning, match="bdl_like-s0/result.json: not readable as JSON"):
        df = load_results(ladder).set_index("run_id")
    assert df.loc["bdl_like-s0", "status"] == "unreadable" and "result.json" in df.loc["bdl_like-s0", "error"]


def test_ablation_factors_come_from_config_fields(ladder):
    df = load_results(ladder)
    factors = ablation_factors(df).set_index(df["run_id"])
    expected = {
        "source_only-s0": "source only", "translated_source-s1": "+ translation", "oracle-s0": "oracle",
        "adversarial_only-s0": "AdaptSegNet-like", "translation_adversarial-s1": "CyCADA-like",
        "bdl_like-s0": "BDL-like", "full-s0": "ours", OLD_RECORD: "ours",
    }  # fmt: skip
    assert {k: factors.loc[k, "setting"] for k in expected} == expected
    full = factors.loc["full-s0"]
    assert (
        full["translation"] and full["terms"] == "adversarial" and full["symmetric"] and full["pseudo_labels"]
    )
    assert full["consistency"] == "soft" and full["threshold"] == "class_quantile q=0.5 cap=0.9"
    assert factors.loc["bdl_like-s0", "consistency"] == "none"  # single path: M_conf = M_prob
    assert not factors.loc["oracle-s0", "translation"] and factors.loc["source_only-s0", "terms"] == ""


def test_a_row_that_adapts_with_one_term_alone_is_named_after_its_method():
    import pandas as pd

    from symda.results import LADDER

    rows = pd.DataFrame([
        {"kind": "run", "translate.enabled": False, "adapt.symmetric": False, "self_train.enabled": False,
         "adapt.adversarial.lambda_main": 0.0, "adapt.entropy_adversarial.lambda_main": 0.001},
        {"kind": "run", "translate.enabled": False, "adapt.symmetric": False, "self_train.enabled": False,
         "adapt.adversarial.lambda_main": 0.0, "adapt.entropy.lambda_main": 0.001},
        {"kind": "run", "translate.enabled": False, "adapt.symmetric": False, "self_train.enabled": False,
         "adapt.entropy.lambda_main": 0.001},
    ])  # fmt: skip
    factors = ablation_factors(rows)
    assert list(factors["setting"]) == ["AdvEnt-like", "MinEnt-like", "adapted: adversarial + entropy"]
    assert list(factors["terms"]) == ["entropy_adversarial", "entropy", "adversarial+entropy"]
    assert LADDER.index("AdaptSegNet-like") < LADDER.index("MinEnt-like") < LADDER.index("+ translation")


def test_settings_do_not_depend_on_run_names(ladder):
    """A run folder named "full" whose config is the adversarial-only row is that row; an older
    `symda train` record (no artifacts: it could not translate) is source-only even with
    translate.enabled true, and the symmetric prob-only row has its own name."""
    df = load_results(ladder).set_index("run_id")
    df.loc["full-s0", ["translate.enabled", "adapt.symmetric", "self_train.enabled"]] = [False, False, False]
    df.loc["translated_source-s0", "artifacts.translated_source"] = math.nan
    df.loc["bdl_like-s0", "adapt.symmetric"] = True
    df.loc["bdl_like-s1", ["adapt.symmetric", "pseudo.consistency"]] = [True, "hard"]
    df.loc["translation_adversarial-s0", "self_train.enabled"] = True  # single path, but not BDL's threshold
    df.loc["translation_adversarial-s0", "pseudo.quantile"] = 0.3
    settings = ablation_factors(df.reset_index())["setting"].set_axis(df.index)
    assert settings["full-s0"] == "AdaptSegNet-like" and settings["translated_source-s0"] == "source only"
    assert settings["bdl_like-s0"] == "symmetric, prob-only pseudo labels"
    assert settings["bdl_like-s1"] == "ours, hard consistency"
    assert settings["translation_adversarial-s0"].startswith(
        "adapted: translation + adversarial + pseudo labels"
    )


def test_the_loader_imports_no_torch():
    code = "import symda.results, sys; assert 'torch' not in sys.modules and 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_tune_result_lines_may_end_mid_line(sweep):
    trial_dir = next(sweep.glob("run_trial_aaaa0004_*"))
    with (trial_dir / "result.json").open("a") as f:
        f.write('{"progress": 3, "mi')  # a running trial, caught mid-write
    assert load_results(trial_dir)["miou"].iloc[0] == 18.0
    assert json.loads((trial_dir / "params.json").read_text()) == {"pseudo.conf_weight": 0.1}
