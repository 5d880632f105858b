"""A finished run is never modified; an unfinished one continues only with its own config; a command
that fails on bad input leaves nothing behind (symda/run_folder.py, through the command line)."""

import hashlib

import pytest

from symda.cli import main
from symda.config import load_config, save_config
from symda.run_folder import RunFolderError, check_run_folder, differing_keys


def tiny_args(tiny_data):
    return ["--set", f"data.source_root={tiny_data['source']}", "--set", f"data.target_root={tiny_data['target']}",
            "--set", "translate.enabled=false", "--set", "train.steps=2", "--set", "train.batch_size=2",
            "--set", "train.log_every=2", "--set", "train.checkpoint_every=2",
            "--set", "data.source_size=[32, 64]", "--set", "data.target_size=[32, 64]"]  # fmt: skip


def snapshot(folder):
    """{file name: sha256} of every file under folder."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def finished_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", *tiny_args(tiny_data), "--out", str(run)]) == 0
    return run


def test_a_finished_run_is_never_modified(finished_run, tiny_data, capsys):
    before = snapshot(finished_run)
    capsys.readouterr()
    for extra in ([], ["--resume"], ["--set", "data.source_root=/nonexistent"],
                  ["--resume", "--set", "model.backbone=resnet34"]):  # fmt: skip
        assert main(["train", *tiny_args(tiny_data), *extra, "--out", str(finished_run)]) == 2, extra
        err = capsys.readouterr().err
        assert "holds a finished run (metrics.json" in err and "Traceback" not in err, extra
        assert snapshot(finished_run) == before, extra


def test_an_unfinished_run_continues_only_with_resume_and_its_own_config(finished_run, tiny_data, capsys):
    (finished_run / "metrics.json").unlink()  # as if killed after its last checkpoint
    before = snapshot(finished_run)
    assert main(["train", *tiny_args(tiny_data), "--out", str(finished_run)]) == 2
    assert "holds an unfinished run (checkpoint.pt); continue it with --resume" in capsys.readouterr().err
    assert main(["train", *tiny_args(tiny_data), "--resume", "--set", "model.backbone=resnet34",
                 "--out", str(finished_run)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "model.backbone: 'resnet18' there, 'resnet34' now" in err
    assert snapshot(finished_run) == before  # config.yaml still says resnet18, like the checkpoint
    # Operational keys (how often it logs) may change; the run then finishes.
    assert main(["train", *tiny_args(tiny_data), "--resume", "--set", "train.log_every=1",
                 "--out", str(finished_run)]) == 0  # fmt: skip
    assert (finished_run / "metrics.json").is_file()


def test_resume_needs_a_checkpoint(tiny_data, tmp_path, capsys):
    assert main(["train", *tiny_args(tiny_data), "--resume", "--out", str(tmp_path / "new")]) == 2
    assert "holds no run (nothing to resume)" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    started = tmp_path / "started"  # config.yaml written, killed before the first checkpoint
    save_config(load_config(overrides=tiny_args(tiny_data)[1::2]), started / "config.yaml")
    assert main(["train", *tiny_args(tiny_data), "--resume", "--out", str(started)]) == 2
    assert "checkpoint.pt not found" in capsys.readouterr().err
    assert (
        main(["train", *tiny_args(tiny_data), "--out", str(started)]) == 0
    )  # nothing to lose: it starts again
    assert (started / "metrics.json").is_file()


def test_a_failed_new_run_leaves_no_folder(tiny_data, tmp_path, capsys):
    run = tmp_path / "bad"
    assert (
        main(["train", *tiny_args(tiny_data), "--set", "data.source_root=/nonexistent", "--out", str(run)])
        == 2
    )
    assert "/nonexistent" in capsys.readouterr().err
    assert not run.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(["train", *tiny_args(tiny_data), "--set", "data.source_root=/nonexistent", "--out", str(empty)])
        == 2
    )
    assert empty.is_dir() and not any(empty.iterdir())  # the user's empty folder stays, empty


def test_a_folder_of_other_files_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderError, match=r"not empty \(notes.txt\) and not a symda run folder"):
        check_run_folder(mine, load_config(), "run")
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="is not a folder"):
        check_run_folder(tmp_path / "file", load_config(), "run")


def test_a_run_killed_while_writing_its_record_is_unfinished(tmp_path):
    """`symda run` writes result.json, then metrics.json last: killed between the two, the folder is
    an unfinished run the same command continues; with metrics.json it is finished."""
    run, cfg = tmp_path / "run", load_config()
    save_config(cfg, run / "config.yaml")
    (run / "result.json").write_text("{}")
    assert check_run_folder(run, cfg, "run") is True
    (run / "metrics.json").write_text("{}")
    with pytest.raises(RunFolderError, match=r"holds a finished run \(metrics.json"):
        check_run_folder(run, cfg, "run")


def test_differing_keys_ignore_only_operational_keys():
    base = load_config()
    assert differing_keys(base, load_config(overrides={"train.log_every": 7, "name": "x"})) == {}
    assert differing_keys(base, load_config(overrides={"train.lr": 0.5, "seed": 3})) == {
        "seed": (0, 3),
        "train.lr": (base.train.lr, 0.5),
    }
