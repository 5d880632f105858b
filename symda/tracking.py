"""Experiment trackers: TensorBoard event files in every run folder, MLflow or W&B for sweeps.

`TensorBoardLog` turns the stage reports every run already makes (the records of log.jsonl) into
TensorBoard scalars, one chart per stage and key (`F_T_r0/loss_seg`, `F_T_r1/val_miou`,
`pseudo_r1/coverage`, ...), and adds the pictures the stages draw (translator grids, pseudo-label
panels, predictions) as images, into `<run folder>/tensorboard`. A sweep's trials are run folders
too, so `tensorboard --logdir <sweep>/runs` shows every trial's curves side by side.

`tune_callbacks` builds Ray Tune's own logger callbacks for MLflow (a local SQLite store unless told
otherwise) or Weights & Biases (offline unless a key is set): one flag of the sweep drivers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # symda.distributed imports torch; the sweep driver imports this module without it
    from symda.distributed import Report
    from symda.records import Record

TENSORBOARD_DIR = "tensorboard"  # in a run folder
TRACKERS = ("mlflow", "wandb")  # sweeps' --tracker


class TensorBoardLog:
    """Scalars and images of one run into `log_dir` (created on the first write; None: write nothing).

    Scalars: every finite number of a report record under "<stage>/<key>" at the record's "step"
    (records without one, e.g. the "result", at step 0); a dict of numbers (per-class IoU) under
    "<stage>.per_class/<key>.<name>". Evaluations a stage replays from the store land again at their
    steps, so a run whose upstream was cached still shows its curves' evaluations. Written to disk
    every few seconds and at close; a crash loses at most that much.
    """

    def __init__(self, log_dir: Path | None) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), flush_secs=5)
        return self._writer

    def scalars(self, record: Record) -> None:
        """The record's curves (`Record.scalars`, `Record.per_class`: what its type holds) at its step."""
        if self.log_dir is None:
            return
        stage, step = record.stage or "run", record.position()
        for key, value in record.scalars().items():
            self.writer.add_scalar(f"{stage}/{key}", value, step)
        for key, values in record.per_class().items():
            for name, v in values.items():
                if _is_number(v):
                    self.writer.add_scalar(f"{stage}.per_class/{key}.{name}", float(v), step)

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        """The picture at `path` (a PNG a stage drew) as image `tag` at `step`."""
        from PIL import Image

        if self.log_dir is None:
            return
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, array, step, dataformats="HWC")

    def wrap(self, report: Report) -> Report:
        """`report` that also writes each record's scalars here."""
        if self.log_dir is None:
            return report

        def tracked_report(record: Record, checkpoint: Path | None = None) -> None:
            self.scalars(record)
            report(record, checkpoint=checkpoint)

        return tracked_report

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@contextmanager
def tensorboard_log(run_dir: Path, enabled: bool = True) -> Iterator[TensorBoardLog]:
    """A TensorBoardLog into run_dir/TENSORBOARD_DIR (one that writes nothing when not enabled),
    closed at the end."""
    log = TensorBoardLog(Path(run_dir) / TENSORBOARD_DIR if enabled else None)
    try:
        yield log
    finally:
        log.close()


def sample_steps(folder: Path) -> list[tuple[int, Path]]:
    """[(step, file)] of the translator's sample grids (samples/step_000300.png), by step."""
    found = []
    for path in Path(folder).glob("step_*.png"):
        match = re.fullmatch(r"step_(\d+)\.png", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def tune_callbacks(tracker: str | None, sweep_dir: Path, experiment: str) -> list:
    """Ray Tune logger callbacks for `tracker` (None: none; one of TRACKERS).

    mlflow: every trial a run of MLflow experiment `experiment`, its config as params and its reports
    as metrics, in the SQLite store sweep_dir/mlflow.db unless MLFLOW_TRACKING_URI names another
    (MLflow 3 refuses a plain folder store by default; `mlflow ui --backend-store-uri
    sqlite:///.../mlflow.db` opens it, with the full `mlflow` package). wandb: every trial a run of
    project `experiment`, offline under sweep_dir/wandb unless WANDB_API_KEY is set or WANDB_MODE
    says otherwise (`wandb sync` uploads offline runs later).
    """
    import os

    if tracker is None:
        return []
    if tracker == "mlflow":
        _require("mlflow", "mlflow-skinny")
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = (
            os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(sweep_dir) / 'mlflow.db').resolve()}"
        )
        return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, save_artifact=False)]
    if tracker == "wandb":
        _require("wandb", "wandb")
        from ray.air.integrations.wandb import WandbLoggerCallback

        os.environ.setdefault("WANDB_MODE", "online" if os.environ.get("WANDB_API_KEY") else "offline")
        (Path(sweep_dir) / "wandb").mkdir(parents=True, exist_ok=True)
        return [WandbLoggerCallback(project=experiment, dir=str((Path(sweep_dir) / "wandb").resolve()))]
    raise ValueError(f"tracker {tracker!r}: not one of {list(TRACKERS)}")


def _require(module: str, package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"--tracker {module}: {module} is not installed (pip install {package})")
