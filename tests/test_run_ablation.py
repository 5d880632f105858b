"""tune/run_ablation.py (symda.sweeps.ablation): a 2-row x 1-seed grid on tiny data through Ray Tune, then
the same grid again, which reruns nothing and writes the ablation table."""

from __future__ import annotations

import json

import pytest
import yaml

from symda.config import ConfigError
from symda.results import load_results
from symda.sweeps.ablation import main, run_ablation
from tests.conftest import write_cityscapes, write_gta5
from tests.test_sweep import TINY


@pytest.fixture
def tiny_overrides(tmp_path):
    return {**TINY, "data.source_root": str(write_gta5(tmp_path / "gta5", 12)),
            "data.target_root": str(write_cityscapes(tmp_path / "cityscapes", 8, 4)),
            "artifacts_dir": str(tmp_path / "store")}  # fmt: skip


def test_grid_runs_each_cell_once_and_writes_the_table(ray_session, tiny_overrides, tmp_path):
    out = tmp_path / "ablation"
    rows = ["source_only", "adversarial_only"]
    errors = run_ablation(rows, [0], out, tiny_overrides, synth_root=str(tmp_path / "synth-s{seed}"))
    assert errors == []
    train, run = out / "source_only-s0" / "metrics.json", out / "adversarial_only-s0" / "result.json"
    record = json.loads(run.read_text())
    assert record["seed"] == 0 and record["synth.seed"] == 0 and record["train.steps"] == 3
    assert record["translate.enabled"] is False and record["adapt.symmetric"] is False
    assert json.loads(train.read_text())["step"] == 3  # the supervised path: symda train's metrics.json
    assert list(out.glob(".tune/ablation-*/experiment_state-*.json"))  # one Tune experiment
    df = load_results(out)  # Tune's own folder (.tune) is skipped: each run once
    assert sorted(df["run_id"]) == ["adversarial_only-s0", "source_only-s0"]
    stamps = {p: p.stat().st_mtime_ns for p in (train, run)}

    sets = [f"--set={k}={v}" for k, v in tiny_overrides.items()]
    argv = [
        "--rows",
        *rows,
        "--seeds",
        "0",
        "--out",
        str(out),
        "--synth-root",
        str(tmp_path / "synth-s{seed}"),
    ]
    assert main([*argv, *sets]) == 0
    assert {p: p.stat().st_mtime_ns for p in (train, run)} == stamps  # finished cells were not rerun
    table = (out / "ablation.md").read_text()
    assert f"| AdaptSegNet-like |  | adversarial |  |  | {record['miou']:.1f} | 1 |" in table
    assert "| source only |" in table and (out / "ablation.png").is_file()
    trials = load_results(*out.glob(".tune/ablation-*"))
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}  # 2 cells x 2 grids
    assert sorted(trials["miou"].round(6).unique()) == sorted(df["miou"].round(6))


def test_bad_rows_and_grid_keys_fail_before_starting(tmp_path, capsys):
    assert main(["--rows", "full", "nope", "--out", str(tmp_path)]) == 2
    assert "--rows nope: not a ladder row" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--set synth.root: the grid sets it"):
        run_ablation(["full"], [0], tmp_path, {"synth.root": "x"})
    bad = tmp_path / "configs"
    bad.mkdir()
    (bad / "full.yaml").write_text(yaml.safe_dump({"pseudo": {"tua": 0.5}}))
    with pytest.raises(ConfigError, match=r"full\.yaml: pseudo\.tua: unknown key"):
        run_ablation(["full"], [0], tmp_path, {}, config_dir=bad)
    assert not list(tmp_path.glob("full-s0"))
