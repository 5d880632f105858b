"""Typed records: one identity per network, flat forms that read back, and what each type shows."""

from __future__ import annotations

import math
import pickle

from symda.records import Evaluation, NetworkId, PseudoLabelStats, RunResult, StepLog, read_jsonl, write_jsonl


def test_a_network_has_one_identity_from_which_its_names_derive():
    net = NetworkId("T", 2)
    assert (net.tag, net.store_stage) == ("F_T_r2", "segmenter_T")
    assert NetworkId.parse(NetworkId("S", 0).tag) == NetworkId("S", 0)
    assert NetworkId.parse("translate") is None and NetworkId.parse("F_X_r1") is None


def test_records_are_flat_mappings_that_read_back(tmp_path):
    evaluation = Evaluation(50, 20.5, 0.7, {"road": 80.0}, {"entropy": -0.3, "agreement": math.nan},
                            (21.0, 0.6, {"road": 81.0}), "abc", stage="F_T_r1")  # fmt: skip
    flat = dict(evaluation)
    assert flat["val_miou"] == 20.5 and flat["val_miou_fused"] == 21.0 and flat["stage"] == "F_T_r1"
    write_jsonl(tmp_path / "e.jsonl", [evaluation])
    back = Evaluation.from_dict(read_jsonl(tmp_path / "e.jsonl")[0])
    assert back.fused == (21.0, 0.6, {"road": 81.0}) and back.eval_key == "abc" and back.step == 50
    assert pickle.loads(pickle.dumps(evaluation)).per_class_iou == {"road": 80.0}
    # An evaluations.jsonl line written before the records existed (no eval_key, no fused scores).
    old = Evaluation.from_dict({"step": 3, "val_miou": 10.0, "val_miou_se": 1.0, "val_per_class_iou": {}})
    assert old.fused_or_single() == (10.0, 1.0, {}) and old.validators == {}


def test_each_type_says_what_its_curves_and_console_line_show():
    evaluation = Evaluation(5, 20.0, 0.5, {"road": 1.0}, {"entropy": -0.3, "snd": math.nan}, eval_key="k")
    assert evaluation.scalars() == {"val_miou": 20.0, "val_miou_se": 0.5, "entropy": -0.3}
    assert "eval_key" not in evaluation.console() and evaluation.per_class() == {
        "val_per_class_iou": {"road": 1.0}
    }
    log = StepLog(10, {"loss": 1.5, "lr": 0.01})
    assert log.scalars() == {"loss": 1.5, "lr": 0.01} and log.position() == 10
    stats = PseudoLabelStats(1, {"coverage": 0.6, "coverage_per_class": {"road": 0.9}}, "pseudo_r1")
    assert stats.position() == 1 and stats.per_class() == {"coverage_per_class": {"road": 0.9}}
    result = RunResult(30.0, 0.5, 31.0, {"agreement": 0.9})
    assert result.position() == 0 and dict(result)["stage"] == "result"
