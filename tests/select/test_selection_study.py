"""The selection study: variants drawn from a sweep's space, the per-kind report over final networks
only, and the sweep summary's trust line and warning."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from symda.config import ConfigError
from symda.select import VALIDATORS
from symda.sweeps.study import load_study, sampled_variants


def test_sampled_variants_follow_the_sweeps_space_and_repeat(tmp_path):
    threshold = sampled_variants(
        tmp_path / "s.yaml", {"space": "configs/sweeps/threshold.yaml", "n": 12, "seed": 3}
    )
    assert list(threshold) == [f"cfg{i:02d}" for i in range(12)]
    assert threshold == sampled_variants(
        tmp_path / "s.yaml", {"space": "configs/sweeps/threshold.yaml", "n": 12, "seed": 3}
    )
    for v in threshold.values():  # conditional parameters only where the sweep samples them
        assert ("pseudo.tau" in v) == (v["pseudo.threshold"] == "global")
        assert ("pseudo.quantile" in v) == (v["pseudo.threshold"] == "class_quantile")
        assert 0.0 <= v["pseudo.conf_weight"] <= 1.0 and v["pseudo.consistency"] in ("soft", "hard")
    adversarial = sampled_variants(tmp_path / "s.yaml", {"space": "configs/sweeps/adversarial.yaml", "n": 3})
    assert all(v["model.aux_head"] is True for v in adversarial.values())  # the space's `set:` comes along
    with pytest.raises(ConfigError, match="sample"):
        sampled_variants(tmp_path / "s.yaml", {"space": "configs/sweeps/threshold.yaml", "n": 0})


def test_the_shipped_selection_studies_hold_at_least_40_configurations_per_seed():
    specs = [
        load_study(f"configs/study/selection_{kind}.yaml") for kind in ("threshold", "adversarial", "stargan")
    ]
    assert sum(len(s.variants) for s in specs) >= 40
    assert all(s.seeds == (0, 1, 2) for s in specs)


def write_points(folder, kind_scores):
    """Two seeds x 8 configurations; each configuration's round evaluated at steps 75 and 150."""
    rows = []
    for seed in (0, 1):
        for i in range(8):
            for step in (75, 150):
                miou = 20.0 + i + seed + (0 if step == 150 else -5 + (i % 2) * 8)
                row = {"seed": seed, "variant": f"cfg{i}", "stage": "F_T_r1", "step": step, "key": f"k{seed}{i}",
                       "miou": miou, "miou_se": 0.4, **{v: math.nan for v in VALIDATORS}}  # fmt: skip
                row.update(kind_scores(i, step, miou))
                rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "points.csv", index=False)


def test_report_ranks_final_networks_per_kind_and_writes_what_sweeps_read(tmp_path):
    from symda.reports import selection_study

    # threshold kind: entropy ranks the configurations exactly, agreement backwards; the checkpoints
    # at step 75 are not configurations (their true mIoU would spoil entropy's ranking if pooled).
    write_points(
        tmp_path / "selection_threshold",
        lambda i, step, miou: {"entropy": -i if step == 75 else i, "agreement": -miou},
    )
    write_points(tmp_path / "selection_adversarial", lambda i, step, miou: {"mixval": miou % 3})
    package = tmp_path / "selection.json"
    studies = [str(tmp_path / "selection_threshold"), str(tmp_path / "selection_adversarial")]
    assert (
        selection_study.main([*studies, "--out", str(tmp_path / "out"), "--package-file", str(package)]) == 0
    )
    numbers = json.loads(package.read_text())
    assert set(numbers) == {"threshold", "adversarial"}
    t = numbers["threshold"]
    assert t["points"] == 16 and t["seeds"] == [0, 1]  # final networks only: 8 configurations x 2 seeds
    assert t["winner"] == "entropy" and t["goal_reached"]
    assert t["pooled"]["entropy"]["rho"] == pytest.approx(1.0) and t["pooled"]["entropy"]["regret1"] == 0
    assert t["pooled"]["agreement"]["rho"] == pytest.approx(-1.0) and t["pooled"]["agreement"]["regret1"] == 7
    assert numbers["adversarial"]["winner"] == "mixval" and not numbers["adversarial"]["goal_reached"]
    text = (tmp_path / "out" / "selection.md").read_text()
    assert "## threshold sweep" in text and "## adversarial sweep" in text and "**not reached**" in text
    for png in ("threshold.png", "adversarial.png", "selection.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


def test_summary_warns_when_the_selecting_validator_ranks_this_kind_poorly(tmp_path):
    from symda.sweeps.summary import trust_line

    path = tmp_path / "selection.json"
    path.write_text(json.dumps({"threshold": {"winner": "info_max", "seeds": [0, 1, 2], "pooled": {
        "agreement": {"rho": -0.4, "regret1": 2.1}, "info_max": {"rho": 0.8, "regret1": 0.3}}}}))  # fmt: skip
    line = trust_line("agreement", "threshold", path)
    assert "rho -0.40" in line and "WARNING" in line and "best here is info_max" in line
    assert "WARNING" not in trust_line("info_max", "threshold", path)
    assert "WARNING" in trust_line("info_max", "stargan", path)  # never measured there
    assert "WARNING" not in trust_line("miou", "threshold", path)
    assert "differ by no more than noise" not in line and "goal" not in line
    data = json.loads(path.read_text())
    data["threshold"]["reproducibility"] = -0.01  # configurations within noise of each other
    data["threshold"]["goal_reached"] = False
    path.write_text(json.dumps(data))
    assert "no validator reaches the selection study's goal on threshold sweeps" in trust_line(
        "info_max", "threshold", path
    )
    assert (
        "differ by no more than noise (their true mIoU ranks agree between seeds with rho -0.01)"
        in trust_line("info_max", "threshold", path)
    )


def test_a_space_file_may_name_the_sweeps_own_default_validator(tmp_path):
    import yaml

    from symda.sweeps.space import load_space

    space = yaml.safe_load(Path("configs/sweeps/threshold.yaml").read_text())
    # the space file's default is the selection study's winner for its kind
    winner = json.loads(Path("symda/select/selection.json").read_text())["threshold"]["winner"]
    assert load_space("configs/sweeps/threshold.yaml").select_by == space["select_by"] == winner
    good, bad, none = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "none.yaml"
    good.write_text(yaml.safe_dump({**space, "select_by": "mixval"}, sort_keys=False))
    bad.write_text(yaml.safe_dump({**space, "select_by": "vibes"}, sort_keys=False))
    none.write_text(yaml.safe_dump({k: v for k, v in space.items() if k != "select_by"}, sort_keys=False))
    assert load_space(good).select_by == "mixval"
    assert load_space(none).select_by is None  # then the base config's select.by
    with pytest.raises(ConfigError, match="vibes"):
        load_space(bad)


def test_reproducibility_tells_configurations_that_differ_from_noise():
    """Configurations whose effect repeats on every seed: rho between seeds near 1; the same values
    shuffled independently per seed (no real effect): near 0 on average, and never a crash on too few."""
    import numpy as np

    from symda.reports.selection_study import reproducibility

    rng = np.random.default_rng(0)
    effect = np.linspace(0, 3, 10)
    rows = [{"variant": f"cfg{i}", "seed": s, "miou": 25 + effect[i] + rng.normal(0, 0.2)}
            for s in range(3) for i in range(10)]  # fmt: skip
    assert reproducibility(pd.DataFrame(rows)) > 0.8
    noise = [
        np.mean(
            [reproducibility(pd.DataFrame([{**r, "miou": rng.normal()} for r in rows])) for _ in range(50)]
        )
    ]
    assert abs(noise[0]) < 0.15
    assert math.isnan(reproducibility(pd.DataFrame(rows[:2])))


def test_a_pick_outside_the_studied_ranges_is_warned_of(tmp_path):
    """The study records the span of each numeric parameter over its configurations (where active),
    the report carries it into selection.json, and a sweep whose pick lies outside it is told the
    study's figure does not cover the pick: the main job's seed-3 pick (global tau 0.996, beyond the
    study's sampled 0.93) was that case."""
    from symda.reports import selection_study
    from symda.sweeps.space import REPO_ROOT
    from symda.sweeps.study import load_study, studied_ranges, write_ranges
    from symda.sweeps.summary import range_line

    space = REPO_ROOT / "configs" / "sweeps" / "threshold.yaml"
    assert load_study("configs/study/selection_threshold.yaml").space == space
    assert load_study("configs/study/validators.yaml").space is None  # variants listed, not drawn

    study = tmp_path / "selection_threshold"
    cells = {"a-s0": {"threshold": "global", "tau": 0.6, "quantile": 0.5, "cap": 0.9, "conf_weight": 0.2},
             "b-s0": {"threshold": "global", "tau": 0.9, "quantile": 0.5, "cap": 0.9, "conf_weight": 0.7},
             "c-s0": {"threshold": "class_quantile", "tau": 0.99, "quantile": 0.3, "cap": 0.8, "conf_weight": 0.5},
             "unfinished-s0": {"threshold": "global", "tau": 0.999, "quantile": 0.5, "cap": 0.9, "conf_weight": 0.5}}  # fmt: skip
    for name, pseudo in cells.items():
        (study / name).mkdir(parents=True)
        (study / name / "config.yaml").write_text(json.dumps({"pseudo": {**pseudo, "consistency": "soft"}}))
        if name != "unfinished-s0":
            (study / name / "result.json").write_text("{}")
    ranges = studied_ranges(study, space)
    # c's tau 0.99 is not counted (tau is inactive under class_quantile), nor the unfinished cell
    assert ranges == {"pseudo.tau": [0.6, 0.9], "pseudo.quantile": [0.3, 0.3], "pseudo.cap": [0.8, 0.8],
                      "pseudo.conf_weight": [0.2, 0.7]}  # fmt: skip

    write_ranges(study, space)
    write_points(study, lambda i, step, miou: {"entropy": miou})
    package = tmp_path / "selection.json"
    assert (
        selection_study.main([str(study), "--out", str(tmp_path / "out"), "--package-file", str(package)])
        == 0
    )
    assert json.loads(package.read_text())["threshold"]["ranges"] == ranges
    assert "pseudo.tau 0.6 to 0.9" in (tmp_path / "out" / "selection.md").read_text()

    line = range_line(
        "source_miou", "threshold", {"pseudo.threshold": "global", "pseudo.tau": 0.996}, package
    )
    assert (
        line.startswith("WARNING")
        and "pseudo.tau 0.996 (studied 0.6 to 0.9)" in line
        and "source_miou" in line
    )
    assert (
        range_line("source_miou", "threshold", {"pseudo.threshold": "global", "pseudo.tau": 0.7}, package)
        == ""
    )
    assert (
        range_line("miou", "threshold", {"pseudo.tau": 0.996}, package) == ""
    )  # the labels, not a validator
    assert (
        range_line("source_miou", "stargan", {"translate.lambda_cls": 50.0}, package) == ""
    )  # no ranges there
