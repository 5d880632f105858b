"""What stages report: typed records, one identity per network, and the one JSON-lines writer.

A stage loop calls `report(record, checkpoint=None)` with one of these frozen records: `StepLog` (a
log line: the window's losses, lr, throughput), `Evaluation` (val mIoU and every validator of one
network at one step), `PseudoLabelStats` (a round's pseudo labels) or `RunResult` (a run's final
numbers). Whoever consumes reports (the console, log.jsonl, TensorBoard, Ray Tune, a segmenter's
evaluations file) dispatches on the record's type. Every record is also a read-only mapping of its
flat JSON form (`as_dict`: the keys of log.jsonl and of Ray's results), so files written before the
types existed read back (`from_dict`), and a test may look at `record["step"]`.

`NetworkId` is a segmentation network's one identity (path "T" or "S", round): its log tag and record
key ("F_T_r1") and its store folder ("segmenter_T") derive from it here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symda.io import atomic_write_text, jsonable
from symda.select import VALIDATORS

# ------------------------------------------------------------------------------------------ identity

_NETWORK_TAG = re.compile(r"F_([TS])_r(\d+)")


@dataclass(frozen=True)
class NetworkId:
    """One segmentation network of the method: F_T or F_S ("T" | "S") after round `round` (0 = adapted)."""

    path: str
    round: int

    @property
    def tag(self) -> str:
        """Its stage tag in reports and its key in a run's records: "F_T_r1"."""
        return f"F_{self.path}_r{self.round}"

    @property
    def store_stage(self) -> str:
        """Its stage in the artifact store (every round of one path in one folder): "segmenter_T"."""
        return f"segmenter_{self.path}"

    @classmethod
    def parse(cls, tag: str) -> NetworkId | None:
        """The network a tag names, or None for any other stage's tag ("translate", "pseudo_r1")."""
        match = _NETWORK_TAG.fullmatch(tag)
        return cls(match[1], int(match[2])) if match else None


# ------------------------------------------------------------------------------------------- records


class Record(Mapping):
    """A report: frozen fields, read as the flat mapping `as_dict` (see the module docstring)."""

    stage: str

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def scalars(self) -> dict[str, float]:
        """The record's numbers as TensorBoard curves: {key: value} at its step (finite ones only)."""
        return {
            k: float(v) for k, v in self.as_dict().items() if _is_number(v) and k not in ("step", "round")
        }

    def per_class(self) -> dict[str, dict[str, float]]:
        """{key: {class: value}} of per-class numbers (curves "<stage>.per_class/<key>.<class>")."""
        return {}

    def console(self) -> dict[str, Any]:
        """What a console line shows (nested values and bookkeeping strings stay in log.jsonl)."""
        return {
            k: v
            for k, v in self.as_dict().items()
            if k not in ("stage", "step") and not isinstance(v, dict | list)
        }

    def position(self) -> int:
        """The step (or round) a tracker files the record at."""
        return int(self.as_dict().get("step") or 0)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


@dataclass(frozen=True, eq=False)
class StepLog(Record):
    """A training loop's log line: `metrics` are the log window's means (losses), lr and images_per_s;
    none for a bare checkpoint report."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**({"stage": self.stage} if self.stage else {}), "step": self.step, **self.metrics}


@dataclass(frozen=True, eq=False)
class Evaluation(Record):
    """One network's evaluation at one step: val mIoU (its bootstrap std), per-class IoU, every
    validator (NaN where the stage has no input for it), with a fixed partner the fused scores, and
    the evaluation key (what the numbers depend on besides the network; symda.pipeline.scoring).
    `replayed`: reported again from the store (a stage taken from the store, or resumed)."""

    step: int
    miou: float
    miou_se: float
    per_class_iou: dict[str, float]
    validators: dict[str, float] = field(default_factory=dict)
    fused: tuple[float, float, dict[str, float]] | None = None  # (miou, miou_se, per-class IoU)
    eval_key: str | None = None
    replayed: bool = False
    stage: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**({"stage": self.stage} if self.stage else {}), "step": self.step,
                               "val_miou": self.miou, "val_miou_se": self.miou_se,
                               "val_per_class_iou": self.per_class_iou, **self.validators}  # fmt: skip
        if self.eval_key is not None:
            out["eval_key"] = self.eval_key
        if self.fused is not None:
            out.update(val_miou_fused=self.fused[0], val_miou_fused_se=self.fused[1],
                       val_per_class_iou_fused=self.fused[2])  # fmt: skip
        if self.replayed:
            out["replayed"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """The record of `as_dict`'s form (an evaluations.jsonl line, also one written before the types)."""
        fused = None
        if "val_miou_fused" in data:
            fused = (data["val_miou_fused"], data.get("val_miou_fused_se", math.nan),
                     data.get("val_per_class_iou_fused", {}))  # fmt: skip
        return cls(int(data["step"]), data["val_miou"], data.get("val_miou_se", math.nan),
                   data.get("val_per_class_iou", {}), {v: data[v] for v in VALIDATORS if v in data}, fused,
                   data.get("eval_key"), bool(data.get("replayed", False)), data.get("stage", ""))  # fmt: skip

    def per_class(self) -> dict[str, dict[str, float]]:
        out = {"val_per_class_iou": self.per_class_iou}
        if self.fused is not None:
            out["val_per_class_iou_fused"] = self.fused[2]
        return out

    def console(self) -> dict[str, Any]:
        return {k: v for k, v in super().console().items() if k != "eval_key"}

    def fused_or_single(self) -> tuple[float, float, dict[str, float]]:
        """(miou, miou_se, per-class IoU) of the fused prediction, or F_T's own without a partner."""
        return self.fused if self.fused is not None else (self.miou, self.miou_se, self.per_class_iou)


@dataclass(frozen=True, eq=False)
class PseudoLabelStats(Record):
    """A round's pseudo labels: coverage, mean confidence and consistency, agreement of the paths,
    and, as diagnostics only, the precision of the kept labels (overall and per class)."""

    round: int
    stats: dict[str, Any]
    stage: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**({"stage": self.stage} if self.stage else {}), "step": self.round, **self.stats}

    def per_class(self) -> dict[str, dict[str, float]]:
        return {k: v for k, v in self.stats.items() if isinstance(v, dict)}


@dataclass(frozen=True, eq=False)
class RunResult(Record):
    """A run's final numbers: F_T's mIoU (its bootstrap std), the fused mIoU and every validator."""

    miou: float
    miou_se: float
    miou_fused: float
    validators: dict[str, float]
    stage: str = "result"

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "miou": self.miou, "miou_se": self.miou_se, "miou_fused": self.miou_fused,
                **self.validators}  # fmt: skip


def tagged_record(record: Record, stage: str) -> Record:
    """`record` filed under `stage` (a loop does not know its stage's tag; the pipeline does)."""
    return dataclasses.replace(record, stage=stage)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------- JSON lines

EVALUATIONS = "evaluations.jsonl"  # a segmenter artifact's Evaluations, one a line (symda.pipeline.selection)


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record (its flat form, full precision) as a line of `path` (a run's log.jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(dict(record), default=jsonable) + "\n")


def write_jsonl(path: Path, records: list[Mapping[str, Any]]) -> Path:
    """Write `records` as the lines of `path`, atomically (a file that is rewritten, not appended to)."""
    return atomic_write_text(
        Path(path), "".join(json.dumps(dict(r), default=jsonable) + "\n" for r in records)
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
