"""A segmenter artifact's evaluations and which of its networks it delivers.

Every segmenter stage keeps its evaluations in its artifact (EVALUATIONS, one Evaluation a line), so
that a stage taken from the store shows the same history (`replay_evaluations`: a sweep's scheduler
sees the same rungs in a rerun) and the run's final numbers can be the stage's own. With
select.keep_checkpoints it also keeps the network of each evaluation, and delivers the one its
validator picks (SELECTION, `network_file`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from symda.artifacts import ArtifactStore
from symda.distributed import Report
from symda.io import read_json, write_json
from symda.records import EVALUATIONS, Evaluation, NetworkId, read_jsonl, write_jsonl
from symda.select import VALIDATORS

log = logging.getLogger(__name__)

SELECTION = "selection.json"  # which kept checkpoint a segmenter artifact delivers, and why
CHECKPOINT = "checkpoint.pt"  # the network a segmenter artifact ends with (symda.adapt.loop)


def read_evaluations(stage_dir: Path) -> list[Evaluation]:
    """The evaluations a segmenter artifact (or its build folder) kept ([] when there are none)."""
    return [Evaluation.from_dict(e) for e in read_jsonl(Path(stage_dir) / EVALUATIONS)]


def recording_evaluations(report: Report, stage_dir: Path) -> Report:
    """`report` that also keeps every Evaluation in stage_dir/EVALUATIONS. One at step s replaces
    those at steps >= s: a build resumed from an earlier checkpoint evaluates those steps again."""

    def recording_report(record: Any, checkpoint: Path | None = None) -> None:
        if isinstance(record, Evaluation):
            kept = [e for e in read_evaluations(stage_dir) if e.step < record.step]
            write_jsonl(Path(stage_dir) / EVALUATIONS, [*kept, dataclasses.replace(record, stage="")])
        report(record, checkpoint=checkpoint)

    return recording_report


def replay_evaluations(stage_dir: Path, report: Report) -> None:
    """Report the evaluations kept in a segmenter artifact again, marked "replayed": a stage taken from
    the store (or resumed) then shows the same evaluation history as when it was built."""
    for evaluation in read_evaluations(stage_dir):
        report(dataclasses.replace(evaluation, replayed=True))


def select_checkpoint(stage_dir: Path, by: str) -> dict[str, Any]:
    """Pick among the checkpoints a segmenter stage kept the one its `by` validator scored highest
    and write SELECTION naming it; `network_file` then delivers it. With no finite score (e.g.
    agreement where the stage has no partner) the last is kept, and the file says so."""
    from symda.adapt.loop import kept_checkpoint
    from symda.select.stats import choose

    evaluations = [e for e in read_evaluations(stage_dir) if kept_checkpoint(stage_dir, e.step).is_file()]
    if not evaluations:
        raise FileNotFoundError(
            f"{stage_dir}: select.keep_checkpoints is on but no evaluated checkpoint was kept"
        )
    chosen = choose(evaluations, by)
    note = ""
    if chosen is None:
        chosen = max(evaluations, key=lambda e: e.step)
        note = f"{by} has no finite score at any evaluation: the last checkpoint is delivered"
        log.warning("%s: %s", stage_dir.name, note)
    selection = {"by": by, "step": chosen.step, "file": str(kept_checkpoint(Path("."), chosen.step)),
                 "score": chosen.get(by), "val_miou": chosen.miou, "note": note,
                 "candidates": [{"step": e.step, by: e.get(by)} for e in evaluations]}  # fmt: skip
    write_json(stage_dir / SELECTION, selection)
    return selection


def selected_step(stage_dir: Path, evaluations: list[Evaluation]) -> int | None:
    """The step whose network a segmenter artifact delivers: its selection's, else its last evaluation's."""
    selection = Path(stage_dir) / SELECTION
    if selection.is_file():
        return read_json(selection)["step"]
    return max((e.step for e in evaluations), default=None)


def network_file(stage_dir: Path) -> Path:
    """The weights a segmenter artifact delivers: its selected checkpoint (SELECTION), else its last."""
    path = Path(stage_dir) / SELECTION
    if path.is_file():
        return Path(stage_dir) / read_json(path)["file"]
    return Path(stage_dir) / CHECKPOINT


def selections(store: ArtifactStore, artifacts: dict[str, str]) -> dict[str, dict[str, Any]]:
    """For each segmenter stage of a run ({"F_T_r1": key, ...}), which of its evaluations every
    validator would pick and that evaluation's true val mIoU, beside "last" and "best" (symda.select.
    stats.checkpoint_choices), and "delivered": the step the artifact delivers. Stages evaluated once
    are left out (nothing to choose)."""
    from symda.select.stats import checkpoint_choices

    out: dict[str, dict[str, Any]] = {}
    for name, key in artifacts.items():
        network = NetworkId.parse(name)
        if network is None:
            continue
        stage_dir = store.network_path(network, key)
        evaluations = read_evaluations(stage_dir)
        if len(evaluations) < 2:
            continue
        choices: dict[str, Any] = checkpoint_choices(evaluations, list(VALIDATORS))
        choices["delivered"] = selected_step(stage_dir, evaluations)
        out[name] = choices
    return out
