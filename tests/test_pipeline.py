"""The whole method end to end on tiny data: translate -> adapt F_T, F_S -> pseudo labels -> self-train."""

import json
import math
from pathlib import Path

import pytest

from symda.cli import main as cli_main
from symda.config import load_config
from symda.pipeline import run_experiment
from symda.select import VALIDATORS

TINY = {
    "translate.g_conv_dim": 8, "translate.g_repeat_num": 1, "translate.d_conv_dim": 8, "translate.d_repeat_num": 2,
    "translate.load_size": [32, 64], "translate.image_size": [16, 32], "translate.batch_size": 2,
    "translate.generator_steps": 2, "translate.n_critic": 1,
    "data.source_size": [32, 64], "data.target_size": [32, 64],
    "train.steps": 3, "train.batch_size": 2, "train.log_every": 3, "train.checkpoint_every": 3,
    "adapt.adversarial.d_channels": 8, "eval.batch_size": 4,
}  # fmt: skip


@pytest.fixture
def cfg_for(tiny_data, tmp_path):
    def make(**overrides):
        base = {"data.source_root": str(tiny_data["source"]), "data.target_root": str(tiny_data["target"]),
                "artifacts_dir": str(tmp_path / "store"), **TINY, **overrides}  # fmt: skip
        return load_config(overrides=base)

    return make


def test_full_method_writes_a_flat_record_and_reuses_upstream(cfg_for, tmp_path, caplog, monkeypatch):
    import symda.pipeline.run

    records, final_evaluations = [], []
    evaluate_method = symda.pipeline.run.evaluate_method
    counted = lambda *a, **k: final_evaluations.append(a) or evaluate_method(*a, **k)  # noqa: E731
    monkeypatch.setattr(symda.pipeline.run, "evaluate_method", counted)  # the run's final evaluation
    monkeypatch.setattr(symda.pipeline, "evaluate_method", counted)  # `symda evaluate`'s
    result = run_experiment(cfg_for(), tmp_path / "run", lambda m, checkpoint=None: records.append(m))
    assert len(final_evaluations) == 1  # self_train.paths both: F_S trained after F_T's last evaluation
    assert 0 <= result["miou"] <= 100 and 0 <= result["miou_fused"] <= 100
    assert len([k for k in result if k.startswith("iou.")]) == 19
    assert result["pseudo.consistency"] == "soft" and result["train.steps"] == 3
    assert {"pseudo_r1.coverage", "pseudo_r1.mean_consis", "seconds.translate", "seconds.self_train"} <= set(
        result
    )
    assert set(json.loads((tmp_path / "run" / "result.json").read_text())) == set(result)
    from symda.translate.apply import IDENTITY_CHANGE

    assert result["translation.identity"] == (result["translation.change"] < IDENTITY_CHANGE)
    stages = {r["stage"] for r in records}
    assert {"translate", "F_T_r0", "F_S_r0", "F_T_r1", "F_S_r1", "result"} <= stages
    evaluations = [r for r in records if r["stage"] == "F_T_r0" and "val_miou" in r]
    store = tmp_path / "store"
    for stage in (
        "translated_source",
        "translated_target",
        "translated_val",
        "pseudo",
        "segmenter_T",
        "segmenter_S",
    ):
        assert [p for p in (store / stage).iterdir() if not p.name.startswith(".")], stage
    pseudo_dir = next(p for p in (store / "pseudo").iterdir() if not p.name.startswith("."))
    assert (pseudo_dir / "data" / "pseudo_labels.png").is_file()
    # The run folder names its pictures (they stay in the store).
    pictures = (tmp_path / "run" / "pictures.md").read_text()
    assert str((pseudo_dir / "data" / "pseudo_labels.png").resolve()) in pictures
    assert "translator: sample translations" in pictures
    assert str((tmp_path / "run" / "predictions.png").resolve()) in pictures
    listed = [line.rsplit(": ", 1)[1] for line in pictures.splitlines() if line.startswith("- ")]
    assert len(listed) == 3 and all(Path(p).is_file() for p in listed)
    # Every stage's curves and pictures in the run's TensorBoard log, read back with TensorBoard's reader.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert {"translate/d_loss", "F_T_r0/loss_seg", "F_T_r0/lr", "F_T_r0/d_acc", "F_T_r0/val_miou",
            "F_T_r1/val_miou", "pseudo_r1/coverage", "pseudo_r1/diag_pseudo_accuracy",
            "result/miou_fused"} <= scalars, scalars  # fmt: skip
    assert "F_T_r1.per_class/val_per_class_iou.road" in scalars
    assert [e.step for e in events.Scalars("F_T_r0/val_miou")] == [3]
    assert events.Scalars("result/miou")[-1].value == pytest.approx(result["miou"])
    assert events.Scalars("pseudo_r1/coverage")[-1].value == pytest.approx(result["pseudo_r1.coverage"])
    assert {"translate/samples", "pseudo_r1/labels", "result/predictions"} <= images
    assert [e.step for e in events.Images("translate/samples")] == [
        2
    ]  # the grid at the translator's last step
    assert "pseudo_r1" in stages

    # `symda evaluate --run` finds the last round's F_T, F_S and V' in the store: the same numbers.
    assert cli_main(["evaluate", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("miou", "miou_se", "miou_fused", "miou_fused_se", *VALIDATORS):
        assert again[key] == result[key] or (math.isnan(again[key]) and math.isnan(result[key])), key
    assert again["partner"] == str(store / "segmenter_S" / result["artifacts.F_S_r1"] / "checkpoint.pt")

    # A downstream change (the threshold) reuses translator, translations and the round-0 networks.
    caplog.set_level("INFO")
    records.clear()
    again = run_experiment(
        cfg_for(**{"pseudo.cap": 0.5}), tmp_path / "run2", lambda m, checkpoint=None: records.append(m)
    )
    for stage in ("translator", "translated_source", "translated_target", "translated_val"):
        assert f"reusing {stage} artifact" in caplog.text
    assert again["artifacts.F_T_r0"] == result["artifacts.F_T_r0"]
    assert again["artifacts.pseudo_r1"] != result["artifacts.pseudo_r1"]
    # Reused stages train nothing; the segmenters replay their stored evaluations (a sweep's ASHA sees
    # the same rungs as when they were built).
    reused = [r for r in records if r["stage"] in {"translate", "F_T_r0", "F_S_r0"}]
    assert reused and all(r.get("replayed") for r in reused)
    replayed = [{k: v for k, v in r.items() if k != "replayed"} for r in reused if r["stage"] == "F_T_r0"]
    evaluations = [dict(e) for e in evaluations]
    assert json.dumps(replayed) == json.dumps(evaluations)  # as text: NaN (agreement in round 0) == NaN

    # How the labels are used (self-training length, which paths retrain) is not part of their key.
    caplog.clear()
    records.clear()
    fewer = run_experiment(cfg_for(**{"self_train.steps": 2, "self_train.paths": "T"}),
                           tmp_path / "run3", lambda m, checkpoint=None: records.append(m))  # fmt: skip
    assert "reusing pseudo artifact" in caplog.text
    assert fewer["artifacts.pseudo_r1"] == result["artifacts.pseudo_r1"]
    assert fewer["artifacts.F_T_r1"] != result["artifacts.F_T_r1"]
    # F_T was evaluated beside the final F_S at its last step: that evaluation is the final one (no
    # second pass), and it equals what evaluating the two delivered networks anew gives.
    assert len(final_evaluations) == 3  # the first run's and run2's (paths both), `symda evaluate --run`'s
    last = [r for r in records if r["stage"] == "F_T_r1" and "val_miou" in r][-1]
    for ours, final in (("val_miou", "miou"), ("val_miou_se", "miou_se"), ("val_miou_fused", "miou_fused"),
                        *((name, name) for name in VALIDATORS if name != "source_miou")):  # fmt: skip
        assert last[ours] == fewer[final] or (math.isnan(last[ours]) and math.isnan(fewer[final])), ours
    assert cli_main(["evaluate", "--run", str(tmp_path / "run3"), "--out", str(tmp_path / "eval3")]) == 0
    anew = json.loads((tmp_path / "eval3" / "metrics.json").read_text())
    for key in ("miou", "miou_se", "miou_fused", "miou_fused_se", *VALIDATORS):
        assert anew[key] == fewer[key] or (math.isnan(anew[key]) and math.isnan(fewer[key])), key
    assert [anew["iou_fused"][c] for c in anew["iou_fused"]] == [
        fewer[f"iou_fused.{c}"] for c in anew["iou_fused"]
    ]


def test_f_s_adapting_in_its_own_process_gives_the_same_networks(cfg_for, tmp_path):
    """scale.parallel_paths: F_S trains in a child process beside F_T; with one thread each, as
    train.threads=1 gives the sequential run, the networks and evaluations are bit-identical, and
    F_S's reports reach the caller."""
    import torch

    def adapt_only(store: str, **more):
        return cfg_for(**{"artifacts_dir": str(tmp_path / store), "self_train.enabled": False,
                          "train.threads": 1, "train.log_every": 1, **more})  # fmt: skip

    seq_records, par_records = [], []
    seq = run_experiment(adapt_only("seq"), tmp_path / "a", lambda m, checkpoint=None: seq_records.append(m))
    par = run_experiment(adapt_only("par", **{"scale.parallel_paths": True}), tmp_path / "b",
                         lambda m, checkpoint=None: par_records.append(m))  # fmt: skip
    assert (seq["artifacts.F_S_r0"], seq["artifacts.F_T_r0"]) == (
        par["artifacts.F_S_r0"],
        par["artifacts.F_T_r0"],
    )
    for name, stage in (("F_S_r0", "segmenter_S"), ("F_T_r0", "segmenter_T")):
        a, b = (torch.load(tmp_path / st / stage / r[f"artifacts.{name}"] / "checkpoint.pt", weights_only=True)
                for st, r in (("seq", seq), ("par", par)))  # fmt: skip
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    for key in ("miou", "miou_fused", *VALIDATORS):
        assert seq[key] == par[key] or (math.isnan(seq[key]) and math.isnan(par[key])), key

    def losses(records, stage):
        return [(r["step"], r["loss"]) for r in records if r.get("stage") == stage and "loss" in r]

    assert losses(par_records, "F_S_r0") == losses(seq_records, "F_S_r0") and losses(par_records, "F_S_r0")


def test_translation_check_warns_of_a_translator_that_learned_the_identity(tmp_path, caplog):
    from symda.pipeline.roots import DomainRoots
    from symda.pipeline.stages import translation_check

    s, t, s_prime = (tmp_path / n for n in ("S", "T", "S_prime"))
    s_prime.mkdir()
    assert translation_check(DomainRoots(s, t, s, t, t)) == {}  # translation off: S' is S's root
    assert translation_check(DomainRoots(s, t, s_prime, t, t)) == {}  # an S' written before it was measured
    caplog.set_level("WARNING")
    (s_prime / "translation.json").write_text(json.dumps({"mean_change": 6.1}))
    assert translation_check(DomainRoots(s, t, s_prime, t, t)) == {"change": 6.1, "identity": False}
    assert "identity" not in caplog.text
    (s_prime / "translation.json").write_text(json.dumps({"mean_change": 0.0}))
    assert translation_check(DomainRoots(s, t, s_prime, t, t)) == {"change": 0.0, "identity": True}
    assert "the translator learned the identity: S' differs from S by 0.00 grey levels" in caplog.text


def test_a_failing_background_call_raises_with_its_traceback():
    from symda.distributed import BackgroundCall, BackgroundError

    reports = []
    call = BackgroundCall(
        _fails_after_one_report, (3,), lambda m, checkpoint=None: reports.append(m), 1, "the test's call"
    )
    with pytest.raises(
        BackgroundError, match=r"the test's call \(in its own process\) failed: ValueError: bad 3"
    ):
        call.result()
    assert [dict(r) for r in reports] == [{"step": 1, "loss": 0.5}]
    ok = BackgroundCall(_returns, (4,), lambda m, checkpoint=None: None, 1, "ok")
    assert ok.result() == 8


def _fails_after_one_report(n: int, report) -> None:
    from symda.records import StepLog

    report(StepLog(1, {"loss": 0.5}))
    raise ValueError(f"bad {n}")


def _returns(n: int, report) -> int:
    return 2 * n


def test_ablation_switches_change_the_graph(cfg_for, tmp_path):
    single = run_experiment(
        cfg_for(
            **{
                "translate.enabled": False,
                "adapt.symmetric": False,
                "self_train.enabled": False,
                "adapt.adversarial.lambda_main": 0.0,
            }
        ),
        tmp_path / "so",
        lambda *a, **k: None,
    )
    assert single["miou"] == single["miou_fused"]  # no F_S: fused is the single model
    assert not any(k.startswith("artifacts.translat") for k in single)
    assert "artifacts.F_S_r0" not in single and "artifacts.pseudo_r1" not in single


def test_single_path_and_symmetric_rows_share_f_t(cfg_for, tmp_path):
    """F_T depends on what it trains on, not on whether F_S exists: ablation rows share it."""
    single = run_experiment(cfg_for(**{"adapt.symmetric": False, "self_train.enabled": False}), tmp_path / "a",
                            lambda *a, **k: None)  # fmt: skip
    symmetric = run_experiment(cfg_for(**{"self_train.enabled": False}), tmp_path / "b", lambda *a, **k: None)
    assert single["artifacts.F_T_r0"] == symmetric["artifacts.F_T_r0"]
    assert "artifacts.F_S_r0" in symmetric


def test_pseudo_diagnostics_of_a_finished_run(cfg_for, tmp_path, capsys):
    """`symda diagnose` rebuilds a run's round-0 networks from the store and writes a results file;
    analysis/pseudo_diagnostics.py reports on it without torch."""
    import subprocess
    import sys

    from symda.sweeps.space import REPO_ROOT

    run = tmp_path / "run"
    run_experiment(cfg_for(), run, lambda m, checkpoint=None: None)
    assert cli_main(["diagnose", "--run", str(run)]) == 0
    diagnostics = json.loads((run / "pseudo_diagnostics.json").read_text())
    assert set(diagnostics["precision_at_coverage"]) == {"0.2", "0.4", "0.6", "0.8"}
    assert 0 <= diagnostics["disagreement"]["disagree"] <= 1
    out = tmp_path / "report" / "diag.md"
    code = ("import runpy, sys; sys.argv = ['x', sys.argv[1], '--out', sys.argv[2]]\n"
            "try: runpy.run_path('analysis/pseudo_diagnostics.py', run_name='__main__')\n"
            "except SystemExit as e: assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, str(run), str(out)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "M_conf (soft)" in text and "F_S right" in text
    assert out.with_suffix(".png").is_file()
    missing = subprocess.run([sys.executable, "analysis/pseudo_diagnostics.py", str(tmp_path / "nothing"), "--out",
                              str(out)], cwd=REPO_ROOT, capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "symda diagnose --run" in missing.stderr


def test_a_fixed_partner_runs_once_over_repeated_evaluations():
    import torch

    from symda.pipeline import pair_probabilities

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.calls = torch.nn.Conv2d(3, 19, 1), 0

        def forward(self, x):
            self.calls += 1
            return {"main": self.conv(x)}

    f_t, f_s = Net(), Net()
    translated = [{"image": torch.randn(3, 4, 8)} for _ in range(4)]
    images = torch.randn(2, 3, 4, 8)
    memo: dict = {}
    first = pair_probabilities(f_t, f_s, translated, memo, fixed=("S",))(images, [1, 3])
    again = pair_probabilities(f_t, f_s, translated, memo, fixed=("S",))(images, [1, 3])
    assert f_t.calls == 2 and f_s.calls == 1
    assert torch.equal(first[1], again[1]) and torch.equal(first[0], again[0])
    pair_probabilities(f_t, f_s, translated)(images, [1, 3])  # without a memo: every call
    assert f_s.calls == 2
    # Labelling: both networks are fixed, so the second pass over the same batches runs neither.
    both: dict = {}
    first = pair_probabilities(f_t, f_s, translated, both)(images, [0, 2])
    again = pair_probabilities(f_t, f_s, translated, both)(images, [0, 2])
    assert (f_t.calls, f_s.calls) == (4, 3) and all(
        torch.equal(a, b) for a, b in zip(first, again, strict=True)
    )


def test_kept_checkpoints_deliver_the_one_the_validator_picks(cfg_for, tmp_path):
    """select.keep_checkpoints: every evaluated network is kept, the artifact delivers select.by's pick
    (pseudo labels and the next round start from it), and the record says what each validator would pick."""
    import torch

    from symda.adapt.loop import kept_checkpoint
    from symda.pipeline import SELECTION, network_file, read_evaluations
    from symda.select.stats import choose

    cfg = cfg_for(**{"select.keep_checkpoints": True, "select.by": "entropy", "train.eval_every": 1,
                     "train.log_every": 1, "data.source_holdout": 3, "self_train.paths": "T"})  # fmt: skip
    result = run_experiment(cfg, tmp_path / "run", lambda m, checkpoint=None: None)
    stage = tmp_path / "store" / "segmenter_T" / result["artifacts.F_T_r0"]
    evaluations = read_evaluations(stage)  # its EVALUATIONS file
    assert [e["step"] for e in evaluations] == [1, 2, 3]
    assert all(kept_checkpoint(stage, e["step"]).is_file() for e in evaluations)
    assert all(math.isfinite(e["source_miou"]) and math.isfinite(e["entropy"]) for e in evaluations)
    picked = choose(evaluations, "entropy")["step"]
    selection = json.loads((stage / SELECTION).read_text())
    assert selection["by"] == "entropy" and selection["step"] == picked
    assert network_file(stage) == kept_checkpoint(stage, picked)
    delivered = torch.load(network_file(stage), weights_only=True)["model"]
    assert delivered.keys() == torch.load(stage / "checkpoint.pt", weights_only=True)["model"].keys()
    # The record: each validator's pick among F_T_r0's evaluations and its true mIoU, the last, the best.
    assert result["selection.F_T_r0.delivered"] == picked
    assert result["selection.F_T_r0.entropy.step"] == picked
    assert result["selection.F_T_r0.last.step"] == 3
    best = max(evaluations, key=lambda e: e["val_miou"])
    assert result["selection.F_T_r0.best.miou"] == best["val_miou"]
    for name in VALIDATORS:
        assert f"selection.F_T_r0.{name}.miou" in result, name
    # F_T beside F_S (built first), in both rounds: the agreement validators have scores.
    assert all(math.isfinite(e["agreement"]) for e in evaluations)
    assert result["selection.F_T_r1.agreement.step"] in (1, 2, 3)
    # A stage without a partner cannot pick by agreement: it delivers its last checkpoint, and says so.
    by_agreement = run_experiment(cfg_for(**{"select.keep_checkpoints": True, "select.by": "agreement",
                                             "train.eval_every": 1, "train.log_every": 1, "self_train.enabled": False,
                                             "adapt.symmetric": False}),
                                  tmp_path / "run2", lambda m, checkpoint=None: None)  # fmt: skip
    stage = tmp_path / "store" / "segmenter_T" / by_agreement["artifacts.F_T_r0"]
    selection = json.loads((stage / SELECTION).read_text())
    assert selection["step"] == 3 and "no finite score" in selection["note"]


def test_memos_keep_one_memo_per_networks_and_dataset(tiny_data):
    # Trials that one Ray actor runs in turn label with the same round-0 networks: one memo for them.
    from symda.data import build_dataset
    from symda.pipeline import Memos, probability_memo

    cfg = load_config(overrides={"data.source_root": str(tiny_data["source"]), "data.target_root": str(tiny_data["target"]),
                                 "data.target_size": [32, 64]})  # fmt: skip
    target = build_dataset(cfg.data, cfg.synth, "target")
    memos = Memos()
    a = probability_memo(target, cfg, 2, memos, ("labelling", "ft0", "fs0"))
    a[("T", (0, 1))] = "kept"
    assert probability_memo(target, cfg, 2, memos, ("labelling", "ft0", "fs0")) is a
    assert probability_memo(target, cfg, 2, memos) is not a  # unshared: a fresh one
    assert probability_memo(target, cfg, 2, Memos(), ("labelling", "ft0", "fs0")) == {}  # another owner's
    b = probability_memo(target, cfg, 2, memos, ("labelling", "ft1", "fs0"))
    assert b == {} and b is not a
    probability_memo(target, cfg, 2, memos, ("partner", "fs0"))
    probability_memo(target, cfg, 2, memos, ("partner", "fs1"))  # a fourth: the least recently used (a) goes
    assert probability_memo(target, cfg, 2, memos, ("labelling", "ft0", "fs0")) == {}
    cfg.data.cache_mb = 0  # probabilities that do not fit are never kept, shared or not
    assert probability_memo(target, cfg, 2, memos, ("labelling", "x")) is None


def test_online_labels_train_each_path_beside_the_other_on_the_offline_upstream(cfg_for, tmp_path):
    """self_train.labels online: the same upstream and offline labels (their thresholds), new round
    networks; each path's round learns its teacher's labels (pseudo_kept logged) beside the other path."""
    offline = run_experiment(
        cfg_for(**{"self_train.labels": "offline"}), tmp_path / "offline", lambda *a, **k: None
    )
    records = []
    online = run_experiment(cfg_for(**{"self_train.labels": "online"}), tmp_path / "online",
                            lambda m, checkpoint=None: records.append(m))  # fmt: skip
    for shared in ("F_T_r0", "F_S_r0", "pseudo_r1"):
        assert online[f"artifacts.{shared}"] == offline[f"artifacts.{shared}"], shared
    for retrained in ("F_T_r1", "F_S_r1"):
        assert online[f"artifacts.{retrained}"] != offline[f"artifacts.{retrained}"], retrained
        logs = [r for r in records if r["stage"] == retrained and "pseudo_kept" in r]
        assert logs and all(0 <= r["pseudo_kept"] <= 1 for r in logs), retrained
    assert 0 <= online["miou"] <= 100
    with pytest.raises(Exception, match="self_train.init: restart"):
        cfg_for(**{"self_train.labels": "online", "self_train.init": "restart"})
