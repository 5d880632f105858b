"""The reports (symda.reports: the ablation table, a sweep's report, the validator study's table) on the
fixture folders of tests/result_fixtures.py: the numbers in the tables, and one end-to-end run of each
of their analysis/ scripts."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pandas as pd
import pytest

from symda.reports import ablation_table, sweep_report, validator_study
from symda.results import CLASS_NAMES, load_results
from symda.sweeps.space import REPO_ROOT
from tests.result_fixtures import (
    ERROR_LINE,
    EXPECTED,
    per_class,
    write_ladder,
    write_run_record,
    write_sweep,
    write_train_run,
)


def script(name: str):
    """An analysis/ script as a module (analysis/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "analysis" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


factor_table = script("factor_table")


@pytest.fixture
def ladder(tmp_path):
    return write_ladder(tmp_path / "runs")


def test_ladder_means_stds_seeds_and_gains(ladder):
    summary = ablation_table.summary_table(ablation_table.ladder_runs(load_results(ladder)))
    assert list(summary.index) == [e[0] for e in EXPECTED]  # ladder order; the unfinished run left out
    for setting, mean, std, n, gain in EXPECTED:
        row = summary.loc[setting]
        assert row["mean"] == pytest.approx(mean) and row["n"] == n, setting
        assert math.isnan(row["std"]) if std is None else row["std"] == pytest.approx(std), setting
        assert math.isnan(row["gain"]) if gain is None else row["gain"] == pytest.approx(gain), setting
    # fused column only where F_S exists; "ours fusion" is its own row
    assert summary.loc["ours single", "fused_mean"] == pytest.approx(37.0)
    assert math.isnan(summary.loc["BDL-like", "fused_mean"]) and math.isnan(
        summary.loc["ours fusion", "fused_mean"]
    )
    assert summary.loc["source only", "per_seed"] == (10.0, 12.0, 14.0)


def test_per_class_table_in_the_fields_order(ladder):
    table = ablation_table.per_class_table(ablation_table.ladder_runs(load_results(ladder)))
    assert list(table.columns) == ["road", "sidewalk", "building", "wall", "fence", "pole", "light", "sign",
                                   "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus",
                                   "train", "motorcycle", "bicycle", "mIoU"]  # fmt: skip
    assert table.loc["source only", "road"] == pytest.approx(per_class(12.0)["road"])  # mean over 3 seeds
    assert table.loc["ours single", "road"] == pytest.approx(per_class(35.0)["road"])
    assert table.loc["ours fusion", "road"] == pytest.approx(per_class(37.0, 1.0)["road"])  # fused IoUs
    assert table.loc["oracle", "mIoU"] == pytest.approx(45.0)
    assert table.loc["BDL-like", CLASS_NAMES[5]] == pytest.approx(per_class(34.0)["pole"])


def test_runs_that_differ_in_a_relevant_key_are_not_averaged(ladder):
    write_run_record(ladder / "bdl_like-long-s0", {"adapt.symmetric": False, "pseudo.consistency": "none",
                     "train.steps": 2400}, 40.0, None, 0)  # fmt: skip
    summary = ablation_table.summary_table(ablation_table.ladder_runs(load_results(ladder)))
    assert summary.loc["BDL-like (train.steps=1200)", "mean"] == pytest.approx(34.0)
    assert summary.loc["BDL-like (train.steps=2400)", "n"] == 1
    assert "BDL-like" not in summary.index and summary.loc["source only", "n"] == 3  # seeds still pooled
    write_run_record(ladder / "full-global-s0", {"pseudo.threshold": "global"}, 30.0, 31.0, 0)
    summary = ablation_table.summary_table(ablation_table.ladder_runs(load_results(ladder)))
    assert summary.loc["ours single (pseudo.threshold=class_quantile)", "mean"] == pytest.approx(35.0)
    assert summary.loc["ours fusion (pseudo.threshold=global)", "mean"] == pytest.approx(31.0)


def test_ablation_table_script_writes_markdown_and_the_chart(ladder, tmp_path, capsys):
    out = tmp_path / "docs" / "ladder.md"
    assert ablation_table.main([str(ladder), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| source only |  |  |  |  | 12.0 ± 2.0 | 3 |  |  | 10.0, 12.0, 14.0 |" in text
    assert "| AdaptSegNet-like |  | adversarial |  |  | 15.0 | 1 | +3.0 |" in text
    assert (
        "| ours fusion | ✓ | adversarial | ✓ | consistency soft, class_quantile q=0.5 cap=0.9 | 37.0 ± 2.8 | 2 | +2.0 |"
        in text
    )
    assert "Left out (no final mIoU): full-s2 (unfinished)." in text
    assert "![ablation ladder: mean ± std over seeds](ladder.png)" in text
    assert (out.with_suffix(".png")).stat().st_size > 1000
    assert ablation_table.main([str(ladder), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    csv = pd.read_csv(tmp_path / "t.csv", index_col="setting")
    assert csv.loc["CyCADA-like", "mean"] == pytest.approx(32.0) and csv.loc[
        "oracle", "gain"
    ] == pytest.approx(8.0)
    assert pd.read_csv(tmp_path / "t_per_class.csv", index_col="setting").loc["oracle", "mIoU"] == 45.0
    assert ablation_table.main([str(ladder), "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert "\\begin{tabular}" in latex and "12.0 $\\pm$ 2.0" in latex and "ours fusion" in latex
    assert ablation_table.main([str(tmp_path / "docs")]) == 2  # nothing finished there


def test_sweep_report_end_to_end(tmp_path):
    sweep = write_sweep(tmp_path / "sweeps")
    out = tmp_path / "report"
    assert sweep_report.main([str(sweep), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "6 trials (4 TERMINATED, 1 ERROR, 1 PENDING); 3 finished with miou" in text
    assert f"- errored aaaa0002: {ERROR_LINE}" in text
    assert "| `pseudo.conf_weight` | 1.000 |" in text  # the only parameter has all the importance
    assert "Best by miou: trial aaaa0003 (miou 25.00; `pseudo.conf_weight`=0.5)" in text
    # aaaa0003 has the base config's value: it is the base config's rerun, which is also the best
    assert "Baseline: trial aaaa0003, whose swept values equal the base config's" in text
    # Records written before symda.select named them proxy_agreement / proxy_entropy.
    assert "`agreement` with miou over 3 finished trials: +1.000" in text
    assert "`entropy` with miou over 3 finished trials: -1.000" in text
    for png in ("params.png", "importance.png", "validators.png"):
        assert f"({png})" in text and (out / png).stat().st_size > 1000


def test_sweep_report_baseline_is_the_median_trial_or_the_given_run(tmp_path):
    sweep = write_sweep(tmp_path / "sweeps")
    (tmp_path / "sweeps" / "base.yaml").unlink()  # no base config: no way to find its rerun
    assert sweep_report.main([str(sweep), "--out", str(tmp_path / "a")]) == 0
    text = (tmp_path / "a" / "report.md").read_text()
    assert "Baseline: the median finished trial by miou, aaaa0006" in text
    assert "mIoU 25.00 against 22.00 (+3.00)" in text and (tmp_path / "a" / "per_class.png").is_file()
    run = write_run_record(tmp_path / "base-run", {}, 21.0, None, 0)
    assert sweep_report.main([str(sweep), "--out", str(tmp_path / "b"), "--baseline", str(run)]) == 0
    assert "mIoU 25.00 against 21.00 (+4.00)" in (tmp_path / "b" / "report.md").read_text()


def test_sweep_report_refuses_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert sweep_report.main([str(tmp_path)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err


def test_summarize_runs_and_the_scripts_import_no_torch(ladder):
    code = ("import runpy, sys; sys.argv = ['x', '--help']\n"
            "for s in ('ablation_table', 'sweep_report', 'summarize_runs', 'factor_table', 'validator_study',\n"
            "          'pseudo_diagnostics'):\n"
            "    try: runpy.run_path(f'analysis/{s}.py', run_name='__main__')\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, capture_output=True)
    done = subprocess.run([sys.executable, "analysis/summarize_runs.py", str(ladder)], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "| bdl_like | 34.0 | 1.4 |  |  | 2 | 33.0, 35.0 |" in done.stdout


def test_factor_table_groups_the_benchmark_rows_by_gap(tmp_path):
    """Two seeds with every factor on, one factor alone: gap, translation's share, share of the full gap."""
    rows = {"source_only": {"translate.enabled": False}, "translated_source": {},
            "oracle": {"data.source": "cityscapes", "translate.enabled": False}}  # fmt: skip
    alone = {f"synth.gap.{f}": float(f == "texture") for f in factor_table.FACTORS}
    for (gap, seed), mious in {
        ((), 0): (10, 20, 40),
        ((), 1): (12, 22, 42),
        (("texture",), 0): (30, 33, 40),
    }.items():
        for (row, overrides), miou in zip(rows.items(), mious, strict=True):
            extra = alone if gap else {}
            write_train_run(
                tmp_path / "-".join(["runs", *gap]) / f"{row}-s{seed}", {**overrides, **extra}, miou, seed
            )
    table = factor_table.factor_table(load_results(tmp_path))
    assert list(table.index) == ["texture", "all"]
    full, texture = table.loc["all"], table.loc["texture"]
    assert (full["source_only"], full["oracle"], full["seeds"], full["gap (oracle - source)"]) == (
        11,
        41,
        2,
        30,
    )
    assert full["translation closes"] == pytest.approx(10 / 30) and full["share of the full gap"] == 1
    assert texture["share of the full gap"] == pytest.approx(10 / 30) and texture[
        "translation closes"
    ] == pytest.approx(0.3)
    assert "| texture | 30.0 | 33.0 | 40.0 | 1 | 10.0 | 30% | 0.33 |" in factor_table.to_markdown(table)


def test_validator_study_table_names_the_winner_and_writes_its_numbers(tmp_path):
    """Two seeds of 12 points: 'entropy' ranks them exactly, 'snd' in reverse, agreement is missing on some."""
    import json

    from symda.select import VALIDATORS

    rows = []
    for seed in (0, 1):
        for i in range(12):
            miou = 20.0 + i + seed
            row = {"seed": seed, "variant": "base" if i < 6 else "no_adv", "stage": f"F_T_r{i % 2}", "step": 50 * i,
                   "key": f"k{i}", "miou": miou, "miou_se": 0.4, **{v: float("nan") for v in VALIDATORS}}  # fmt: skip
            row.update(entropy=miou / 100, snd=-miou, info_max=(i % 3) / 10, aug_agreement=0.5)
            row["agreement"] = float("nan") if i == 11 else miou / 50
            rows.append(row)
    study = tmp_path / "study"
    study.mkdir()
    pd.DataFrame(rows).to_csv(study / "points.csv", index=False)
    package = tmp_path / "study.json"
    assert (
        validator_study.main([str(study), "--out", str(tmp_path / "out"), "--package-file", str(package)])
        == 0
    )
    text = (tmp_path / "out" / "validators.md").read_text()
    assert "# Validator study (24 points, seeds 0, 1)" in text
    assert "| `entropy` **(winner)** |" in text and "Goal (rho >= 0.7, top-1 regret <= 1.0): reached." in text
    numbers = json.loads(package.read_text())
    assert numbers == json.loads((tmp_path / "out" / "study.json").read_text())
    assert numbers["winner"] == "entropy" and numbers["pooled"]["entropy"]["rho"] == pytest.approx(1.0)
    assert numbers["pooled"]["snd"]["regret1"] == pytest.approx(11.0)
    # agreement cannot pick the best point (it has no score there): regret 1, the next best
    assert numbers["pooled"]["agreement"]["regret1"] == pytest.approx(1.0)
    assert numbers["pooled"]["source_miou"]["rho"] is None  # never scored: null, not NaN
    for png in ("scatter.png", "checkpoints.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


def test_self_training_tables_give_each_rows_gain_over_the_same_seeds_start(tmp_path):
    from symda.reports import self_training
    from tests.result_fixtures import write_run_record

    single = {"adapt.symmetric": False, "pseudo.consistency": "none"}
    cells = {"cycada_like": ({**single, "self_train.enabled": False}, [30.0, 32.0]),
             "bdl_like": (single, [31.0, 31.0]), "headroom_all": (single, [40.0, 42.0])}  # fmt: skip
    for row, (overrides, mious) in cells.items():
        for seed, miou in enumerate(mious):
            write_run_record(tmp_path / "study" / f"{row}-s{seed}", overrides, miou, None, seed)
    runs = self_training.study_runs(tmp_path / "study")
    table = self_training.gains(runs).set_index(["row", "seed"])
    assert table.loc[("bdl_like", 0), "gain"] == 1.0 and table.loc[("bdl_like", 1), "gain"] == -1.0
    assert table.loc[("headroom_all", 1), "gain"] == 10.0
    headroom = self_training.headroom_table(runs)
    assert headroom.loc["mIoU", "headroom_all"] == 10.0 and headroom.loc["mIoU", "cycada_like"] == 31.0
    assert headroom.loc["road", "bdl_like"] == pytest.approx(0.0)
    out = tmp_path / "st.md"
    assert self_training.main([str(tmp_path / "study"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "31.00 (+1.00" in text and "+10.00" in text and out.with_suffix(".png").is_file()
    assert self_training.main([str(tmp_path / "study"), "--rows", "bdl_like", "--out", str(out)]) == 0
    text = out.read_text()  # the start row kept, headroom_all left out
    assert "| cycada_like |" in text and "31.00 (+1.00" in text and "+10.00" not in text


def test_robustness_pairs_grid_cells_by_their_config_and_gives_each_models_spread(tmp_path):
    from symda.reports import robustness
    from tests.result_fixtures import write_run_record

    # A 2-cell grid on one seed: the single path swings by 4 points, the pair's F_T by 1, its fusion by 0.
    cells = {"online": (1e-3, 0.5, 30.0, 31.0, 32.0), "robust_lam3e-3_q0.7": (3e-3, 0.7, 26.0, 30.0, 32.0)}
    for row, (lam, q, single, pair_t, fused) in cells.items():
        grid = {"adapt.adversarial.lambda_main": lam, "pseudo.quantile": q}
        write_run_record(tmp_path / "one" / f"{row}-s0", {**grid, "adapt.symmetric": False}, single, None, 0)
        write_run_record(tmp_path / "two" / f"{row}-s0", {**grid, "adapt.symmetric": True}, pair_t, fused, 0)
    # Not grid cells: the start row, and a cell only the single preset finished.
    write_run_record(tmp_path / "one" / "cycada_like-s0", {"self_train.enabled": False}, 20.0, None, 0)
    write_run_record(tmp_path / "one" / "online-s1", {"adapt.symmetric": False}, 10.0, None, 1)
    table = robustness.paired_grid(
        robustness.grid_runs(tmp_path / "one"), robustness.grid_runs(tmp_path / "two")
    )
    assert list(table.index) == [(1e-3, 0.5, 0), (3e-3, 0.7, 0)]
    spread = robustness.spread(table)
    assert spread.loc["single F_T", "range"] == 4.0 and spread.loc["symmetric F_T", "range"] == 1.0
    assert spread.loc["symmetric fused", "std"] == 0.0 and spread.loc["single F_T", "worst"] == 26.0
    out = tmp_path / "robustness.md"
    assert robustness.main([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)]) == 0
    assert "| single F_T | 2 |" in out.read_text() and out.with_suffix(".png").is_file()
    assert robustness.main([str(tmp_path / "one"), str(tmp_path / "empty")]) == 2
