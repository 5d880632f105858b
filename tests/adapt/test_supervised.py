import json

import pytest
import torch

from symda.config import load_config
from symda.pipeline import run_supervised


def tiny_cfg(tiny_data, tmp_path, **overrides):
    base = {
        "data.source_root": str(tiny_data["source"]),
        "data.target_root": str(tiny_data["target"]),
        "data.source_size": [32, 64],
        "data.target_size": [32, 64],
        "data.crop_size": [24, 48],
        "translate.enabled": False,
        "train.steps": 6,
        "train.batch_size": 2,
        "train.log_every": 2,
        "train.checkpoint_every": 3,
        "train.lr": 0.01,
        "synth.root": str(tmp_path / "synth"),
    }
    base.update(overrides)
    return load_config(overrides=base)


def test_source_only_run_writes_outputs_and_reports(tiny_data, tmp_path):
    reports = []
    metrics = run_supervised(
        tiny_cfg(tiny_data, tmp_path),
        tmp_path / "run",
        lambda m, checkpoint=None: reports.append((m, checkpoint)),
    )
    assert [m["step"] for m, _ in reports] == [2, 4, 6, 6]
    assert all(m["loss"] > 0 for m, _ in reports[:-1])
    assert 0 <= metrics["val_miou"] <= 100 and len(metrics["val_per_class_iou"]) == 19
    assert reports[-1][1] == tmp_path / "run" / "checkpoint.pt"
    for name in ("config.yaml", "checkpoint.pt", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["step"] == 6


def test_evaluations_happen_every_eval_every_steps_even_between_log_lines(tiny_data, tmp_path):
    reports = []
    run_supervised(tiny_cfg(tiny_data, tmp_path, **{"train.log_every": 4, "train.eval_every": 3}),
                   tmp_path / "run", lambda m, checkpoint=None: reports.append(m))  # fmt: skip
    from symda.records import Evaluation

    assert [m.step for m in reports if isinstance(m, Evaluation)] == [3, 6]
    # Log lines at 4 and 6, and one at the evaluation's step 3 (after its Evaluation, which is reported
    # before the step's checkpoint is written: symda.adapt.loop); the final Evaluation.
    assert [(type(m).__name__, m.step) for m in reports] == [
        ("Evaluation", 3),
        ("StepLog", 3),
        ("StepLog", 4),
        ("StepLog", 6),
        ("Evaluation", 6),
    ]


def test_training_is_repeatable_and_resume_matches(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, tmp_path)
    run_supervised(cfg, tmp_path / "a", lambda *a, **k: None)
    run_supervised(cfg, tmp_path / "b", lambda *a, **k: None)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Interrupt a run after its step-3 checkpoint, then resume it: it ends with the straight run's weights.
    class Stop(Exception):
        pass

    def stop_at_step_4(metrics, checkpoint=None):
        if metrics["step"] >= 4:
            raise Stop

    with pytest.raises(Stop):
        run_supervised(cfg, tmp_path / "c", stop_at_step_4)
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["step"] == 3
    run_supervised(cfg, tmp_path / "c", lambda *a, **k: None, resume=True)
    resumed = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == 6
    for k in a:
        assert torch.allclose(a[k].float(), resumed["model"][k].float(), atol=1e-5), k


def test_nan_loss_stops_with_a_clear_error(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, tmp_path, **{"train.lr": 1e6, "train.steps": 30, "train.optimizer": "sgd"})
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        run_supervised(cfg, tmp_path / "run", lambda *a, **k: None)


def test_broken_dataset_is_refused_unless_skipping(tiny_data, tmp_path):
    from symda.data.dataset import DatasetError

    (tiny_data["source"] / "images" / "00004.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"00004.png.*\n?.*skip_bad_pairs"):
        run_supervised(tiny_cfg(tiny_data, tmp_path), tmp_path / "run", lambda *a, **k: None)
    metrics = run_supervised(
        tiny_cfg(tiny_data, tmp_path, **{"data.skip_bad_pairs": True}),
        tmp_path / "run2",
        lambda *a, **k: None,
    )
    assert metrics["step"] == 6


def test_translated_source_run_builds_and_then_reuses_stage_1(tiny_data, tmp_path, caplog):
    """translate.enabled: the run trains on S' = G(S, target); a second run reuses translator and S'."""
    tiny_translator = {
        "translate.enabled": True, "translate.g_conv_dim": 8, "translate.g_repeat_num": 1,
        "translate.d_conv_dim": 8, "translate.d_repeat_num": 2, "translate.load_size": [32, 64],
        "translate.image_size": [16, 32], "translate.batch_size": 2, "translate.generator_steps": 2,
        "translate.n_critic": 1, "artifacts_dir": str(tmp_path / "store"),
    }  # fmt: skip
    cfg = tiny_cfg(tiny_data, tmp_path, **tiny_translator)
    records = []
    first = run_supervised(cfg, tmp_path / "a", lambda m, checkpoint=None: records.append(m))
    assert set(first["artifacts"]) == {"translator", "translated_source"}
    assert {"translate", "train"} <= {r["stage"] for r in records}
    s_prime = tmp_path / "store" / "translated_source" / first["artifacts"]["translated_source"] / "data"
    assert sorted(p.name for p in (s_prime / "images").iterdir()) == sorted(
        p.name for p in (tiny_data["source"] / "images").iterdir()
    )
    caplog.set_level("INFO")
    records.clear()
    second = run_supervised(cfg, tmp_path / "b", lambda m, checkpoint=None: records.append(m))
    assert second["artifacts"] == first["artifacts"]
    assert "translate" not in {r["stage"] for r in records}  # nothing retrained
    assert (
        "reusing translator artifact" in caplog.text and "reusing translated_source artifact" in caplog.text
    )
