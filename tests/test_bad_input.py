"""Every bad input ends with exit status 2 and one message naming the file, key or value, no
traceback, nothing half-written (issue 13's list; the README's table points at these tests)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from symda.adapt.networks import build_segmenter
from symda.artifacts import ArtifactStore
from symda.checkpoints import matching_model_settings
from symda.cli import main
from symda.config import ConfigError, load_config
from symda.data.synthcity.writing import generate_synthcity

TINY = ["--set", "translate.enabled=false", "--set", "train.steps=2", "--set", "train.batch_size=2",
        "--set", "train.log_every=2", "--set", "data.source_size=[32, 64]", "--set", "data.target_size=[32, 64]"]  # fmt: skip


def data_args(tiny_data):
    return [
        "--set",
        f"data.source_root={tiny_data['source']}",
        "--set",
        f"data.target_root={tiny_data['target']}",
    ]


@pytest.fixture
def trained(tiny_data, tmp_path):
    """A finished tiny `symda train` run folder (config.yaml, checkpoint.pt, metrics.json)."""
    run = tmp_path / "run"
    assert main(["train", *data_args(tiny_data), *TINY, "--out", str(run)]) == 0
    return run


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------- checkpoints


class RunsCode:
    """An object whose unpickling creates `marker`: a crafted checkpoint runs it the moment a
    weights_only=False load (what torch did by default before 2.6) opens the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "list", "code"])
def test_unusable_checkpoints_are_named(kind, trained, tiny_data, tmp_path, capsys):
    """Every entry point that reads a checkpoint a user names (evaluate --checkpoint, translate apply,
    --resume, model.weights): exit 2, the file and the fault named, no traceback; a crafted pickle
    is refused unrun (its marker file is never created)."""
    bad = tmp_path / "bad" / "checkpoint.pt"
    bad.parent.mkdir()
    (bad.parent / "config.yaml").write_bytes((trained / "config.yaml").read_bytes())
    good = (trained / "checkpoint.pt").read_bytes()
    marker = tmp_path / "PWNED"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif kind == "text":
        bad.write_text("not a checkpoint\n")
    elif kind == "list":
        torch.save([1, 2, 3], bad)
    else:
        torch.save({"model": RunsCode(marker), "step": 1}, bad)
        torch.load(bad, weights_only=False)  # the control: the file is live, it does run code
        assert marker.is_file()
        marker.unlink()
    expected = {"empty": "is empty (0 bytes)", "truncated": "truncated, or not a torch checkpoint",
                "text": "truncated, or not a torch checkpoint", "list": "holds a list",
                "code": "refused: its pickle calls for the Python object"}[kind]  # fmt: skip
    assert main(["evaluate", *data_args(tiny_data), *TINY, "--checkpoint", str(bad)]) == 2
    err = error_of(capsys)
    assert str(bad) in err and expected in err
    # The same file as a translator for `translate apply`, as the network's initial weights
    # (model.weights), and as the checkpoint of a run to resume.
    assert main(["translate", "apply", "--checkpoint", str(bad), "--data", str(tiny_data["source"]),
                 "--kind", "gta5", "--to", "target", "--out", str(tmp_path / "t")]) == 2  # fmt: skip
    assert str(bad) in error_of(capsys) and not (tmp_path / "t").exists()
    assert main(["train", *data_args(tiny_data), *TINY, "--set", f"model.weights={bad}",
                 "--out", str(tmp_path / "w")]) == 2  # fmt: skip
    assert str(bad) in error_of(capsys)
    (trained / "metrics.json").unlink()  # unfinished, so --resume reads its checkpoint
    (trained / "checkpoint.pt").write_bytes(bad.read_bytes())
    assert main(["train", *data_args(tiny_data), *TINY, "--resume", "--out", str(trained)]) == 2
    assert str(trained / "checkpoint.pt") in error_of(capsys)
    assert not marker.exists()


def test_a_trusted_checkpoint_with_python_objects_is_upgraded_to_data(tmp_path, capsys):
    """`symda checkpoint upgrade`: tensors and plain values are kept
    (numpy ones converted), other objects named and left out; the new file reads with weights_only;
    the original is untouched and nothing is written over."""
    import argparse

    import numpy as np

    src = tmp_path / "released.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1.0), "best": np.float32(41.5),
                "hist": np.arange(3)}, src)  # fmt: skip
    before = src.read_bytes()
    assert main(["checkpoint", "upgrade", str(src)]) == 0
    out = tmp_path / "released.data.pth"
    err = capsys.readouterr().err
    assert "left out checkpoint['args']: argparse.Namespace" in err and "trust" in err
    blob = torch.load(out, weights_only=True)
    assert torch.equal(blob["model"]["w"], torch.ones(2)) and blob["best"] == 41.5 and "args" not in blob
    assert torch.equal(blob["hist"], torch.arange(3)) and src.read_bytes() == before
    assert main(["checkpoint", "upgrade", str(src)]) == 2  # never over an existing file
    assert "already exists" in error_of(capsys)


class _RunsCode:
    """A pickle that, unpickled the ordinary way, calls `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_upgrading_a_checkpoint_runs_none_of_its_code(tmp_path, capsys):
    """The objects a foreign pickle names are stand-ins: its REDUCE calls nothing real; one that names
    os or sys is refused outright (torch's own block list), the file named, nothing written."""
    import shutil

    src, marker = tmp_path / "evil.pth", tmp_path / "ran"
    torch.save(
        {"model": {"w": torch.ones(2)}, "payload": _RunsCode(shutil.copyfile, str(src), str(marker))}, src
    )
    assert main(["checkpoint", "upgrade", str(src)]) == 0
    assert not marker.exists()
    assert "left out checkpoint['payload']: shutil.copyfile" in capsys.readouterr().err
    assert torch.equal(torch.load(tmp_path / "evil.data.pth", weights_only=True)["model"]["w"], torch.ones(2))

    worse = tmp_path / "worse.pth"
    torch.save({"payload": _RunsCode(os.makedirs, str(marker))}, worse)
    assert main(["checkpoint", "upgrade", str(worse)]) == 2
    assert (
        str(worse) in error_of(capsys) and not marker.exists() and not (tmp_path / "worse.data.pth").exists()
    )


def test_a_checkpoint_of_another_architecture_says_what_would_match(trained, tiny_data, capsys):
    args = ["evaluate", *data_args(tiny_data), *TINY, "--checkpoint", str(trained / "checkpoint.pt")]
    assert main([*args, "--set", "model.backbone=resnet34"]) == 2
    err = error_of(capsys)
    assert "another architecture than model.backbone=resnet34" in err
    assert (
        "it matches --set model.backbone=resnet18 --set model.last_layer=layer3 --set model.aux_head=False"
        in err
    )
    state = build_segmenter(load_config(overrides={"model.backbone": "resnet34", "model.last_layer": "layer4"}).model,
                            load_weights=False).state_dict()  # fmt: skip
    assert matching_model_settings(state) == [{"model.backbone": "resnet34", "model.last_layer": "layer4",
                                               "model.aux_head": False, "model.aspp_dilations": "4 values"}]  # fmt: skip


# ------------------------------------------------------------------------------------ config values


@pytest.mark.parametrize("override, key", [
    ("train.lr=.nan", "train.lr"), ("train.lr=.inf", "train.lr"), ("adapt.adversarial.lambda_main=1e999", "adapt.adversarial.lambda_main"),
    ("translate.lambda_rec=-.inf", "translate.lambda_rec"), ("self_train.pseudo_weight=.NaN", "self_train.pseudo_weight"),
])  # fmt: skip
def test_non_finite_rates_and_weights_are_refused_at_config_time(override, key):
    # YAML's spellings of NaN and infinity (and a number too large for a float) parse as floats.
    with pytest.raises(ConfigError, match=f"{key}: must be a finite number"):
        load_config(overrides=[override])
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'nan'"):
        load_config(overrides=["train.lr=nan"])  # plain "nan" is a string to YAML


def test_a_crop_larger_than_the_resized_image_is_refused():
    with pytest.raises(ConfigError, match=r"data.crop_size: \[64, 512\] is larger than the resized image"):
        load_config(overrides={"data.source_size": [64, 128], "data.crop_size": [64, 512]})
    load_config(
        overrides={"data.source_size": [64, 128], "data.target_size": [64, 128], "data.crop_size": [64, 128]}
    )


def test_a_loss_that_turns_non_finite_stops_without_a_traceback(tiny_data, tmp_path):
    # lr 1e30 blows the weights up within two steps: the loss turns non-finite and is named with its step.
    out = tmp_path / "nan"
    proc = subprocess.run([sys.executable, "-m", "symda", "train", *data_args(tiny_data), *TINY, "--set", "train.lr=1e30",
                           "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "non-finite training loss" in proc.stderr and "at step" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_typo_in_model_weights_is_an_error(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *data_args(tiny_data), *TINY, "--set", "model.weights=/no/such/resnet18.pth",
                 "--out", str(out)]) == 2  # fmt: skip
    err = error_of(capsys)
    assert "model.weights: /no/such/resnet18.pth not found" in err and "model.weights=none" in err
    assert not out.exists()


# --------------------------------------------------------------------------------- output folders


def test_unwritable_outputs_are_refused_before_any_work(tiny_data, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["train", *data_args(tiny_data), *TINY, "--out", str(a_file / "run")]) == 2
    assert f"--out: {a_file / 'run'} cannot be a folder: {a_file} is a file" in error_of(capsys)
    assert main(["train", *data_args(tiny_data), *TINY, "--set", f"artifacts_dir={a_file / 'store'}",
                 "--out", str(tmp_path / "run")]) == 2  # fmt: skip
    assert "artifacts_dir:" in error_of(capsys) and not (tmp_path / "run").exists()


def test_an_unwritable_sweep_storage_or_store_is_refused_before_ray_starts(tmp_path, capsys, monkeypatch):
    from symda.sweeps import driver

    monkeypatch.setattr(driver, "connect", lambda address: pytest.fail("Ray was started"))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert (
        driver.main(["--storage", str(a_file / "sweeps"), "--set", f"artifacts_dir={tmp_path / 'store'}"])
        == 2
    )
    assert "--storage:" in capsys.readouterr().err
    assert (
        driver.main(["--storage", str(tmp_path / "sweeps"), "--set", f"artifacts_dir={a_file / 'store'}"])
        == 2
    )
    assert "artifacts_dir:" in capsys.readouterr().err


def test_evaluate_a_checkpoint_without_config_reads_the_one_beside_it(trained, tiny_data, tmp_path, capsys):
    assert (
        main(["evaluate", *data_args(tiny_data), *TINY, "--checkpoint", str(trained / "checkpoint.pt")]) == 0
    )
    loose = tmp_path / "loose.pt"
    loose.write_bytes((trained / "checkpoint.pt").read_bytes())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(loose)]) == 2
    assert "no --config given and no config.yaml beside it" in error_of(capsys)
    assert not (tmp_path / "data").exists()  # no SynthCity generated under the defaults


# ------------------------------------------------------------------------------------ synth counts


@pytest.mark.parametrize("flags, message", [
    (["--n-source", "0"], "expected a positive number of images"),
    (["--n-target", "-3"], "expected a positive number of images"),
    (["--n-val", "x"], "expected a positive number of images"),
    (["--size", "0x0"], "at least 8 pixels"),
    (["--n-source"], "expected one argument"),
])  # fmt: skip
def test_synth_counts_and_sizes(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--out", str(tmp_path / "s"), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------- orphans of interrupted work


def test_a_killed_generation_leaves_no_orphan(tmp_path, caplog):
    out = tmp_path / "synthcity"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is certainly gone
    stale = tmp_path / f".synthcity.tmp-{dead.pid}-deadbeef"
    (stale / "gta5").mkdir(parents=True)
    live = tmp_path / f".synthcity.tmp-{os.getpid()}-cafecafe"  # this process: alive, kept
    live.mkdir()
    caplog.set_level("WARNING")
    generate_synthcity(out, seed=0, size=(32, 64), n_source=2, n_target=2, n_val=1, workers=1, progress=False)
    assert not stale.exists() and live.exists()
    assert f"removing {stale}: the temporary folder of an interrupted generation" in caplog.text


def test_store_gc_lists_and_removes_interrupted_builds(tmp_path, capsys):
    store = ArtifactStore(tmp_path / "store")
    done = store.get_or_build("pseudo", {"a": 1}, None, lambda work: (work / "x.bin").write_bytes(b"1" * 10))
    work = tmp_path / "store" / "pseudo" / ".0123456789abcdef.building"
    work.mkdir()
    (work / "checkpoint.pt").write_bytes(b"0" * 2048)
    args = ["store", "gc", "--set", f"artifacts_dir={tmp_path / 'store'}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pseudo/0123456789abcdef  interrupted" in out and "symda store gc --remove" in out
    assert main([*args, "--remove"]) == 0
    assert "removed 1 interrupted builds" in capsys.readouterr().out
    assert not work.exists() and (done.path / "x.bin").is_file()


def test_a_checkpoint_that_holds_python_objects_is_refused_not_unpickled(tmp_path):
    """A handed file is data: an object beyond tensors and plain values is never rebuilt (no code runs)."""
    import argparse

    import torch

    from symda.checkpoints import CheckpointError, read_checkpoint

    path = tmp_path / "foreign.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError, match="symda unpickles only tensors and plain values"):
        read_checkpoint(path, "segmenter checkpoint")
