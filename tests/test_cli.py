"""End-to-end through the command line: synth -> check-data -> train -> evaluate, and input errors."""

import json

import numpy as np
from PIL import Image

from symda.cli import main

TINY = ["--set", "translate.enabled=false", "--set", "train.steps=4", "--set", "train.batch_size=2", "--set", "train.log_every=2",
        "--set", "data.source_size=[32, 64]", "--set", "data.target_size=[32, 64]"]  # fmt: skip


def test_synth_train_evaluate(tmp_path, capsys):
    root = tmp_path / "synthcity"
    assert main(["synth", "--set", f"synth.root={root}", "--size", "32x64", "--n-source", "6", "--n-target", "4",
                 "--n-val", "3"]) == 0  # fmt: skip
    assert (root / "samples.png").is_file()
    # The command prints the settings that describe what it wrote; other settings would be refused.
    use = capsys.readouterr().out.split("use it with: ")[1].split()
    synth = [a for a in use if a != "--set"]
    synth = [x for kv in synth for x in ("--set", kv)]
    assert main(["check-data", "--set", f"synth.root={root}"]) == 2
    err = capsys.readouterr().err
    # The refusal repeats the flags that describe the folder's dataset: the one-line fix.
    assert "holds a different SynthCity dataset" in err and " ".join(use) in err
    assert main(["check-data", *synth]) == 0
    run = tmp_path / "run"
    assert main(["train", *synth, *TINY, "--out", str(run)]) == 0
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [2, 4, 4]

    preds = tmp_path / "preds"
    args = [
        "evaluate",
        *synth,
        *TINY,
        "--checkpoint",
        str(run / "checkpoint.pt"),
        "--save-predictions",
        str(preds),
    ]
    assert main([*args, "--color"]) == 0
    metrics = json.loads((run / "eval_val" / "metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 100
    written = sorted(p for p in preds.rglob("*_leftImg8bit.png"))
    assert len(written) == 3
    ids = np.asarray(Image.open(written[0]))
    assert ids.shape == (32, 64) and set(np.unique(ids)) <= {
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    }
    assert len(list(preds.rglob("*_color.png"))) == 3
    out = capsys.readouterr().out
    assert "mIoU" in out and "metrics:" in out


def test_unknown_config_key_exits_with_a_named_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  stepz: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "train.stepz: unknown key" in err


def test_missing_dataset_root_exits_with_a_named_error(tmp_path, capsys):
    missing = tmp_path / "no_gta5"
    out = tmp_path / "run"
    args = [
        "train",
        "--set",
        f"data.source_root={missing}",
        "--set",
        f"data.target_root={tmp_path}",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    assert f"{missing}: dataset root not found" in capsys.readouterr().err
    assert not out.exists()  # a run that failed on its input leaves no folder behind


def test_corrupt_png_stops_training_before_it_starts(tiny_data, tmp_path, capsys):
    (tiny_data["source"] / "images" / "00003.png").write_bytes(b"\x89PNG broken")
    args = ["train", "--set", f"data.source_root={tiny_data['source']}", "--set", f"data.target_root={tiny_data['target']}", *TINY,
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "00003.png" in err and "unreadable_image: 1" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_evaluate_names_what_fused_inference_lacks(tmp_path, capsys):
    from symda.config import load_config, save_config

    ckpt = tmp_path / "run" / "f_t.pt"
    save_config(load_config(), tmp_path / "run" / "config.yaml")  # evaluate reads the config beside it
    import torch

    torch.save({"model": {"w": torch.zeros(1)}}, ckpt)  # readable: the other inputs are checked next
    assert main(["evaluate", "--checkpoint", str(ckpt), "--partner", str(tmp_path / "f_s.pt")]) == 2
    assert f"{tmp_path / 'f_s.pt'}: partner checkpoint not found" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(ckpt), "--partner", str(ckpt)]) == 2
    assert "--partner needs --partner-data" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert f"--run {tmp_path}: not a symda run folder (no config.yaml)" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "run")]) == 2
    assert "metrics.json: not found (is" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "give --checkpoint" in capsys.readouterr().err


def test_symda_run_says_which_checkpoint_each_validator_would_pick():
    from symda.cli import _selection_lines
    from symda.select import VALIDATORS

    record = {"miou": 20.0, "selection.F_T_r1.delivered": 150,
              "selection.F_T_r1.last.step": 150, "selection.F_T_r1.last.miou": 20.0,
              "selection.F_T_r1.best.step": 100, "selection.F_T_r1.best.miou": 21.5,
              **{f"selection.F_T_r1.{v}.step": 50 for v in VALIDATORS},
              **{f"selection.F_T_r1.{v}.miou": 19.25 for v in VALIDATORS}}  # fmt: skip
    record["selection.F_T_r1.agreement.step"] = None
    (line,) = _selection_lines(record)
    assert line.startswith(
        "checkpoint choice in F_T_r1 (step (true val mIoU); delivered: step 150): last 150 (20.00)"
    )
    assert "best 100 (21.50)" in line and "entropy 50 (19.25)" in line and "agreement n/a" in line
    assert _selection_lines({"miou": 1.0}) == []


def test_version_config_show_and_keys(tmp_path, capsys):
    import pytest
    import yaml

    from symda import __version__
    from symda.config import describe_keys, flatten, load_config

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"symda {__version__}"
    # `config show` prints the resolved config as YAML that loads back as the same config, and names
    # the default of every value that differs from it.
    assert main(["config", "show", "--config", "configs/synthcity/quick.yaml", "--set", "train.lr=3e-4"]) == 0
    shown = capsys.readouterr().out
    assert "  lr: 0.0003  # default: 0.001" in shown and "  steps: 400  # default: 1200" in shown
    (tmp_path / "shown.yaml").write_text(shown)
    want = load_config("configs/synthcity/quick.yaml", ["train.lr=3e-4"])
    assert (
        flatten(load_config(tmp_path / "shown.yaml")) == flatten(want)
        and yaml.safe_load(shown)["train"]["lr"] == 3e-4
    )
    # `config keys` lists every key with its type, default and help; every key has a help (a new field
    # without a comment fails here).
    assert main(["config", "keys", "model.bn"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("model.bn_mode") and '"train"' in line and "BatchNorm" in line
    assert [k.key for k in describe_keys() if not k.help] == []
    assert (
        main(["config", "keys", "nope"]) == 2
        and "no config key starts with 'nope'" in capsys.readouterr().err
    )


def test_every_command_explains_itself(capsys):
    import pytest

    from symda.cli import EXAMPLES

    for command in EXAMPLES:
        with pytest.raises(SystemExit) as done:
            main([*command.split(), "--help"])
        text = capsys.readouterr().out
        assert done.value.code == 0 and f"example:\n  {EXAMPLES[command]}" in text, command
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "the benchmark's seed (default: synth.seed)" in capsys.readouterr().out


def test_console_lines_are_short_and_rounded_and_the_log_keeps_everything(tmp_path, capsys):
    from symda.cli import _printing_report
    from symda.records import Evaluation, StepLog

    report = _printing_report(tmp_path / "log.jsonl")
    report(StepLog(50, {"loss": 1.2345678901234}, "F_T_r1"))
    record = Evaluation(50, 20.172950035, 0.5, {"road": 91.25}, eval_key="96a441bc6e6bf85e", stage="F_T_r1")
    report(record)
    assert (
        capsys.readouterr().out
        == "[F_T_r1 step 50] loss 1.235\n[F_T_r1 step 50] val_miou 20.17 val_miou_se 0.5\n"
    )
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[1]) == dict(record)  # every field at full precision, the key too


def test_store_migrate_links_an_old_store_under_todays_keys_and_says_so(tmp_path, capsys):
    from symda.artifacts import ArtifactStore
    from symda.config import load_config
    from tests.test_stage_keys import todays_keys, write_store

    cfg = load_config(overrides={"synth.root": str(tmp_path / "synth")})
    old = write_store(tmp_path / "store", cfg, rounds=1)
    flags = ["--set", f"artifacts_dir={tmp_path / 'store'}", "--set", f"synth.root={tmp_path / 'synth'}"]
    assert main(["store", "migrate", *flags, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(old)} artifacts of older key schemas would link under today's keys" in out
    store = ArtifactStore(tmp_path / "store")
    assert len(store.records()) == len(old)  # a dry run links nothing
    assert main(["store", "migrate", *flags]) == 0
    assert "already there" in capsys.readouterr().out
    keys = {r["key"] for r in store.records()}
    assert set(todays_keys(cfg, rounds=1).values()) <= keys and set(old.values()) <= keys
