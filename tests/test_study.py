"""The study runner's pieces that need no training: the study file and the points of finished cells."""

import json

import pytest

from symda.config import ConfigError
from symda.reports.validator_study import collect_points
from symda.select import VALIDATORS
from symda.sweeps.study import load_study


def write(path, text):
    path.write_text(text)
    return path


def test_the_shipped_study_file_loads_and_fills_in_the_seed(tmp_path):
    from symda.sweeps.space import REPO_ROOT

    spec = load_study(REPO_ROOT / "configs" / "study" / "validators.yaml")
    assert spec.seeds == (0, 1, 2) and "base" in spec.variants and len(spec.variants) >= 6
    cfg = spec.cell_config("adv_1e-2", 2)
    assert cfg.seed == cfg.synth.seed == 2 and cfg.synth.root.endswith("-s2")
    assert (
        cfg.adapt.adversarial.lambda_main == 1e-2 and cfg.data.source_holdout > 0 and cfg.train.eval_every > 0
    )


def test_bad_study_files_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_study(
            write(tmp_path / "a.yaml", "config: configs/synthcity/quick.yaml\nvariants: {a: {}}\nseed: 1\n")
        )
    with pytest.raises(ConfigError, match=r"variants.bad: .*adapt.lambda_ad"):
        load_study(write(tmp_path / "b.yaml", "config: configs/synthcity/quick.yaml\n"
                                              "variants: {bad: {adapt.lambda_ad: 1}}\n"))  # fmt: skip
    with pytest.raises(ConfigError, match="variants: missing"):
        load_study(write(tmp_path / "c.yaml", "config: configs/synthcity/quick.yaml\n"))


def fake_cell(out, store, variant, seed, keys, evaluations):
    """A finished cell's result.json naming F_T artifacts, and those artifacts' evaluations.jsonl."""
    cell = out / f"{variant}-s{seed}"
    cell.mkdir(parents=True)
    record = {"seed": seed, "artifacts_dir": str(store), "miou": 1.0,
              **{f"artifacts.F_T_r{r}": k for r, k in enumerate(keys)}}  # fmt: skip
    (cell / "result.json").write_text(json.dumps(record))
    for key in keys:
        folder = store / "segmenter_T" / key
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps({"step": s, "val_miou": m, "val_miou_se": 0.3, "entropy": -m / 100})
            for s, m in evaluations[key]
        ]
        (folder / "evaluations.jsonl").write_text("\n".join(lines) + "\n")


def test_points_count_a_shared_network_once(tmp_path):
    out, store = tmp_path / "study", tmp_path / "store"
    evaluations = {"r0": [(100, 10.0), (200, 12.0)], "r1a": [(50, 14.0)], "r1b": [(50, 13.0)]}
    fake_cell(out, store, "base", 0, ["r0", "r1a"], evaluations)
    fake_cell(out, store, "quantile_0.2", 0, ["r0", "r1b"], evaluations)  # the same round-0 network
    (out / "unfinished-s0").mkdir()  # no result.json: not a point
    points = collect_points(out)
    assert len(points) == 4
    assert list(points.columns[:7]) == ["seed", "variant", "stage", "step", "key", "miou", "miou_se"]
    assert set(VALIDATORS) <= set(points.columns)
    r0 = points[points["key"] == "r0"]
    assert list(r0["step"]) == [100, 200] and set(r0["variant"]) == {"base"}
    assert points.loc[points["key"] == "r1b", "variant"].item() == "quantile_0.2"
    assert points["agreement"].isna().all() and points["entropy"].notna().all()


def test_every_cell_of_the_self_training_study_is_a_valid_config_and_a_bad_file_is_named(tmp_path):
    from symda.config import ConfigError
    from symda.sweeps.self_training import STUDY_FILE, make_cells, read_study

    presets, rows = read_study(STUDY_FILE)
    for preset in presets:
        cells = make_cells(STUDY_FILE, preset, None, [0, 1], tmp_path, {})
        assert len(cells) == 2 * len(rows) and len({c.out for c in cells}) == len(cells)
        by_name = {c.name: c.config for c in cells}
        assert (
            by_name["headroom_kept-s1"].pseudo.true_target_labels == "kept"
            and by_name["bdl_like-s1"].synth.seed == 1
        )
        assert not by_name["cycada_like-s0"].self_train.enabled
        # row-major: cells run at once (--max-concurrent) are of different seeds, not waiting on one upstream
        first = next(iter(rows))
        assert [c.name for c in cells[:2]] == [f"{first}-s0", f"{first}-s1"]
        assert by_name["bdl_like-s0"].adapt.symmetric == (preset == "screen_pair")  # the pair's upstream
    bad = tmp_path / "bad.yaml"
    bad.write_text("presets: {screen: {config: configs/synthcity/quick.yaml, synth_root: 'd-{seed}', set: {}}}\n"
                   "rows: {r: {self_train.intit: restart}}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"self_train\.intit: unknown key"):
        make_cells(bad, "screen", None, [0], tmp_path, {})
    with pytest.raises(ConfigError, match=r"--rows nope: not a row"):
        make_cells(STUDY_FILE, "screen", ["nope"], [0], tmp_path, {})


def test_cells_run_without_ray_keep_finished_ones_and_report_failures(tmp_path):
    """run_cells_here (the study's --no-ray): a finished cell is left alone, a failing one is named with
    its error, and the grid goes on."""
    from symda.config import load_config
    from symda.sweeps.grid import Cell, run_cells_here

    done = tmp_path / "done-s0"
    done.mkdir()
    (done / "result.json").write_text(json.dumps({"miou": 1.0}))
    (done / "metrics.json").write_text("{}")  # written last: the cell finished
    for empty in ("no_gta5", "no_cityscapes"):  # roots that exist and hold no dataset
        (tmp_path / empty).mkdir()
    broken = load_config(overrides={"data.source_root": str(tmp_path / "no_gta5"),
                                    "data.target_root": str(tmp_path / "no_cityscapes")})  # fmt: skip
    cells = [Cell("done-s0", 0, broken, done), Cell("broken-s0", 0, broken, tmp_path / "broken-s0")]
    errors = run_cells_here(cells, max_concurrent=2)
    assert len(errors) == 1 and errors[0].startswith("broken-s0: ") and "no_gta5" in errors[0]
    assert (done / "result.json").read_text() == json.dumps({"miou": 1.0})


def test_kept_records_outlive_the_run_folder_and_its_store(tmp_path):
    """--keep: a later run (another checkout: the first run's folder and store gone) skips the kept
    cells and adds its points to the kept ones; a point measured again takes its new row."""
    import shutil

    import pandas as pd

    from symda.sweeps.study import keep_records, run_study

    keep = tmp_path / "kept"
    first, store = tmp_path / "run1", tmp_path / "store1"
    fake_cell(first, store, "base", 0, ["r0", "r1a"], {"r0": [(100, 10.0)], "r1a": [(50, 14.0)]})
    kept = keep_records(first, keep, collect_points(first))
    assert len(kept) == 2 and (keep / "base-s0" / "result.json").is_file()
    shutil.rmtree(first)
    shutil.rmtree(store)

    spec = load_study(write(tmp_path / "s.yaml", "config: configs/synthcity/quick.yaml\nseeds: [0]\n"
                                                 "variants: {base: {}}\n"))  # fmt: skip
    assert run_study(spec, tmp_path / "run2", keep=keep) == []  # nothing to run: base-s0 is kept

    second, store2 = tmp_path / "run2", tmp_path / "store2"
    fake_cell(second, store2, "cfg0", 0, ["r0", "r1b"], {"r0": [(100, 10.5)], "r1b": [(50, 13.0)]})
    merged = keep_records(second, keep, collect_points(second))
    assert set(merged["key"]) == {"r0", "r1a", "r1b"} and len(merged) == 3
    assert merged.loc[merged["key"] == "r0", "miou"].item() == 10.5  # measured again: the new row
    assert pd.read_csv(keep / "points.csv").equals(merged)
    assert sorted(p.name for p in keep.iterdir()) == ["base-s0", "cfg0-s0", "points.csv"]
