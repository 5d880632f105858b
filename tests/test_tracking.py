"""TensorBoard logs of runs (read back with TensorBoard's own reader) and the sweeps' tracker callbacks."""

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from symda.tracking import TENSORBOARD_DIR, TensorBoardLog, sample_steps, tensorboard_log, tune_callbacks


def read(log_dir: Path) -> EventAccumulator:
    return EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0}).Reload()


def test_reports_become_scalars_per_stage_and_key(tmp_path: Path):
    from symda.records import Evaluation, RunResult, StepLog

    seen = []
    with tensorboard_log(tmp_path, enabled=True) as tb:
        report = tb.wrap(lambda record, checkpoint=None: seen.append(record))
        report(StepLog(50, {"loss": 0.5, "lr": 1e-3, "d_acc": 0.75}, "F_T_r0"))
        report(StepLog(100, {"loss": 0.25}, "F_T_r0"))
        report(Evaluation(100, 31.5, math.nan, {"road": 90.0, "wall": math.nan}, eval_key="abc", replayed=True,
                          stage="F_T_r0"))  # fmt: skip
        report(RunResult(32.0, math.nan, math.nan, {}))
    assert len(seen) == 4 and seen[0]["loss"] == 0.5  # the wrapped report still gets every record
    events = read(tmp_path / TENSORBOARD_DIR)
    tags = set(events.Tags()["scalars"])
    assert tags == {"F_T_r0/loss", "F_T_r0/lr", "F_T_r0/d_acc", "F_T_r0/val_miou",
                    "F_T_r0.per_class/val_per_class_iou.road", "result/miou"}  # fmt: skip
    assert [(e.step, e.value) for e in events.Scalars("F_T_r0/loss")] == [(50, 0.5), (100, 0.25)]
    assert [(e.step, e.value) for e in events.Scalars("result/miou")] == [(0, 32.0)]


def test_pictures_become_images(tmp_path: Path):
    picture = tmp_path / "grid.png"
    Image.fromarray(np.full((6, 10, 3), 200, dtype=np.uint8)).save(picture)
    with tensorboard_log(tmp_path / "run") as tb:
        tb.image("translate/samples", picture, 300)
    image = read(tmp_path / "run" / TENSORBOARD_DIR).Images("translate/samples")
    assert [(e.step, e.width, e.height) for e in image] == [(300, 10, 6)]


def test_switched_off_it_writes_nothing(tmp_path: Path):
    def report(metrics, checkpoint=None):
        return None

    with tensorboard_log(tmp_path, enabled=False) as tb:
        assert tb.wrap(report) is report
        from symda.records import StepLog

        tb.scalars(StepLog(1, {"loss": 1.0}, "x"))
        tb.image("x", tmp_path / "missing.png")
    assert not (tmp_path / TENSORBOARD_DIR).exists()
    assert TensorBoardLog(tmp_path / "lazy").log_dir == tmp_path / "lazy"
    assert not (tmp_path / "lazy").exists()  # nothing created before the first write


def test_translator_sample_grids_by_step(tmp_path: Path):
    for name in ("step_000300.png", "step_000050.png", "notes.png"):
        (tmp_path / name).write_bytes(b"")
    assert sample_steps(tmp_path) == [(50, tmp_path / "step_000050.png"), (300, tmp_path / "step_000300.png")]
    assert sample_steps(tmp_path / "absent") == []


def test_tracker_callbacks(tmp_path: Path, monkeypatch):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    assert tune_callbacks(None, tmp_path, "x") == []
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (mlflow,) = tune_callbacks("mlflow", tmp_path, "sweep-1")
    assert isinstance(mlflow, MLflowLoggerCallback)
    assert mlflow.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert mlflow.experiment_name == "sweep-1"
    with pytest.raises(ValueError, match="'comet': not one of"):
        tune_callbacks("comet", tmp_path, "x")


def test_wandb_runs_offline_without_a_key(tmp_path: Path, monkeypatch):
    pytest.importorskip("wandb")
    from ray.air.integrations.wandb import WandbLoggerCallback

    for name in ("WANDB_API_KEY", "WANDB_MODE"):  # set, then removed: monkeypatch restores the original
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    (callback,) = tune_callbacks("wandb", tmp_path, "sweep-1")
    assert isinstance(callback, WandbLoggerCallback) and callback.project == "sweep-1"
    import os

    assert os.environ["WANDB_MODE"] == "offline" and (tmp_path / "wandb").is_dir()


def test_the_token_auth_notice_is_dropped_and_its_warning_kept():
    from symda.sweeps.driver import quiet_ray_notices

    quiet_ray_notices()
    quiet_ray_notices()  # once is enough: no second filter
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert len(logger.filters) == 1
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled ...")
        logger.warning(
            "Token authentication is disabled for this Ray cluster. Anyone with network access ..."
        )
    finally:
        logger.removeHandler(handler)
    assert [m[:34] for m in seen] == ["Token authentication is disabled f"]
