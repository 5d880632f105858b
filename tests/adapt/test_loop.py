"""The segmentation loop: loss terms over data streams, checkpoints with the terms' states, resume."""

from __future__ import annotations

import copy
import dataclasses
import types

import pytest
import torch

import symda.training
from symda.adapt.loop import SegmenterJob, output_levels, train_segmenter
from symda.adapt.networks import build_segmenter
from symda.adapt.step import TermContext
from symda.config import load_config
from symda.data import build_dataset
from symda.distributed import Runtime
from symda.models.losses import pseudo_label_loss
from symda.terms.adversarial import AdversarialConfig, OutputAdversarial
from symda.terms.cross_entropy import PseudoLabelCrossEntropy, SourceCrossEntropy

ADV_KEYS = {"step", "loss", "loss_seg", "loss_adv", "loss_d", "d_acc", "lr", "images_per_s"}


def setup(tiny_data, tmp_path, aux_head=False, **train):
    """(train config, model, {"source", "target", "pseudo"} datasets) for 32x64 images, resnet18
    layer3; the tiny target's gtFine labels stand in for pseudo labels."""
    overrides = {
        "data.source_root": str(tiny_data["source"]),
        "data.target_root": str(tiny_data["target"]),
        "data.source_size": [32, 64],
        "data.target_size": [32, 64],
        "data.crop_size": None,  # the discriminator needs >= 32 pixels a side
        "model.aux_head": aux_head,
        "train.steps": 4,
        "train.batch_size": 2,
        "train.log_every": 2,
        "train.checkpoint_every": 2,
        "train.lr": 0.01,
        "synth.root": str(tmp_path / "synth"),
        **{f"train.{k}": v for k, v in train.items()},
    }
    cfg = load_config(overrides=overrides)
    torch.manual_seed(0)
    model = build_segmenter(cfg.model, load_weights=False)
    roles = {"source": "source", "target": "target", "pseudo": "target_labelled"}
    return cfg.train, model, {s: build_dataset(cfg.data, cfg.synth, r) for s, r in roles.items()}


def adversarial(**kw) -> OutputAdversarial:
    return OutputAdversarial(AdversarialConfig(**{"lambda_main": 0.01, "d_channels": 8, "d_lr": 1e-3, **kw}))


def job(cfg, data, terms, out, **kw) -> SegmenterJob:
    return SegmenterJob(cfg, data, tuple(terms), out, **kw)


def collect(reports):
    return lambda m, checkpoint=None: reports.append(m)


class Stop(Exception):
    """What `stopping_at`'s report raises: a stage killed part-way."""


def stopping_at(step: int):
    """A report that raises Stop at the first report of `step` or later."""

    def report(metrics, checkpoint=None):
        if metrics["step"] >= step:
            raise Stop

    return report


def test_adversarial_run_reports_every_key_and_trains_both_discriminators(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, aux_head=True)
    term = adversarial(lambda_aux=0.002)
    reports = []
    train_segmenter(job(cfg, data, [SourceCrossEntropy(), term], tmp_path / "run"), model, collect(reports))
    assert [r["step"] for r in reports] == [2, 4, 4]
    for r in reports[:-1]:
        assert ADV_KEYS | {"loss_adv_aux", "loss_d_aux"} == set(r)
        assert 0 <= r["d_acc"] <= 1 and r["loss_d"] > 0 and r["loss_adv"] > 0
        assert r["loss"] > r["loss_seg"]  # the weighted adversarial term is part of the objective
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["terms"]["OutputAdversarial"]
    assert set(state["discriminators"]) == set(state["optimizers"]) == {"main", "aux"}
    fresh = adversarial(lambda_aux=0.002)  # what the run started from: the same seeded stream
    fresh.setup(TermContext(Runtime(), 0, 19, output_levels(model)))
    for level, d in fresh.adversary.discs.items():
        trained = state["discriminators"][level]
        assert any(not torch.equal(v, trained[k]) for k, v in d.state_dict().items()), level


def test_a_term_switched_off_builds_nothing_and_its_stream_is_not_read(tiny_data, tmp_path, monkeypatch):
    cfg, model, data = setup(tiny_data, tmp_path)
    reports = []
    train_segmenter(job(cfg, {"source": data["source"]}, [SourceCrossEntropy()], tmp_path / "run"), model,
                    collect(reports))  # fmt: skip
    assert set(reports[0]) == {"step", "loss", "loss_seg", "lr", "images_per_s"}
    assert reports[0]["loss"] == reports[0]["loss_seg"]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["terms"] == {}


def test_self_training_reports_pseudo_loss_and_counts_every_image(tiny_data, tmp_path, monkeypatch):
    cfg, model, data = setup(tiny_data, tmp_path)
    ticks = iter(range(1000))
    monkeypatch.setattr(
        symda.training, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    )
    reports = []
    terms = [SourceCrossEntropy(), PseudoLabelCrossEntropy(0.5), adversarial()]
    train_segmenter(job(cfg, data, terms, tmp_path / "run"), model, collect(reports))
    first = reports[0]
    assert ADV_KEYS | {"loss_pseudo"} == set(first)
    assert first["loss_pseudo"] > 0
    assert first["loss"] > first["loss_seg"] + 0.5 * first["loss_pseudo"]  # plus lambda * adv
    # A clock that advances 1 s per reading: 2 steps of a source, a pseudo and a target batch of 2.
    assert first["images_per_s"] == 12


def test_resumed_adversarial_run_matches_the_straight_run(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, steps=6, checkpoint_every=3)
    init = copy.deepcopy(model.state_dict())

    def run(out, report, resume=False):
        train_segmenter(
            job(cfg, data, [SourceCrossEntropy(), adversarial()], out, resume=resume), model, report
        )

    run(tmp_path / "a", lambda *a, **k: None)
    model.load_state_dict(init)
    with pytest.raises(Stop):
        run(tmp_path / "c", stopping_at(4))
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["step"] == 3
    model.load_state_dict(init)  # a fresh process would start from a fresh model too
    run(tmp_path / "c", lambda *a, **k: None, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    c = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)
    assert c["step"] == 6
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), c["model"][k].float(), atol=1e-5), k
    d_a, d_c = (x["terms"]["OutputAdversarial"]["discriminators"]["main"] for x in (a, c))
    for k, v in d_a.items():
        assert torch.allclose(v, d_c[k], atol=1e-6), k


def test_resume_refuses_a_checkpoint_without_the_terms_states(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, steps=2)
    train_segmenter(job(cfg, data, [SourceCrossEntropy()], tmp_path / "run"), model, lambda *a, **k: None)
    with pytest.raises(ValueError, match=r"checkpoint.pt: holds the states of terms \[\] but this run has "
                                         r"\['OutputAdversarial'\]"):  # fmt: skip
        train_segmenter(job(cfg, data, [SourceCrossEntropy(), adversarial()], tmp_path / "run", resume=True),
                        model, lambda *a, **k: None)  # fmt: skip


def test_a_job_refuses_a_term_whose_stream_it_has_no_data_for(tiny_data, tmp_path):
    cfg, _, data = setup(tiny_data, tmp_path)
    with pytest.raises(ValueError, match="OutputAdversarial reads the 'target' stream, but the job has no"):
        job(cfg, {"source": data["source"]}, [SourceCrossEntropy(), adversarial()], tmp_path)
    with pytest.raises(ValueError, match="at least one loss term"):
        job(cfg, data, [], tmp_path)


def test_two_terms_reporting_one_name_are_refused(tiny_data, tmp_path):
    cfg, model, data = setup(tiny_data, tmp_path, steps=1)
    with pytest.raises(ValueError, match="reports 'loss_seg', which another term of the step reports"):
        train_segmenter(job(cfg, data, [SourceCrossEntropy(), SourceCrossEntropy()], tmp_path / "run"), model,
                        lambda *a, **k: None)  # fmt: skip


# ------------------------------------------------------------------------------ pieces of a step


def test_all_ignored_pseudo_labels_give_zero_loss_not_nan():
    logits = {"main": torch.randn(1, 19, 4, 8, requires_grad=True)}
    loss = pseudo_label_loss(logits, torch.full((1, 32, 64), 255, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()


def test_the_segmenters_generator_loss_puts_no_gradient_into_the_discriminator():
    term = adversarial()
    term.setup(TermContext(Runtime(), 0, 19, ("main",)))
    target = torch.softmax(torch.randn(2, 19, 32, 64, requires_grad=True), dim=1)
    target.retain_grad()
    weighted, metrics = term.adversary.generator_loss({"main": target})
    weighted.backward()
    d = term.adversary.discs["main"]
    assert all(p.grad is None for p in d.parameters())
    assert all(p.requires_grad for p in d.parameters())  # unfrozen again for its own step
    assert target.grad is not None and target.grad.abs().sum() > 0
    assert weighted.item() == pytest.approx(0.01 * metrics["loss_adv"].item())


def test_the_discriminators_step_ends_where_its_own_step_alone_takes_it():
    """The segmenter's part of a step leaves D as it was: D ends where a D step alone takes it."""
    a, b = adversarial(gan_loss="lsgan"), adversarial(gan_loss="lsgan")
    for t in (a, b):
        t.setup(TermContext(Runtime(), 0, 19, ("main",)))
    source = {"main": torch.softmax(torch.randn(2, 19, 32, 64), dim=1)}
    target = {"main": torch.softmax(torch.randn(2, 19, 32, 64, requires_grad=True), dim=1)}
    a.adversary.generator_loss(target)[0].backward()
    out_a, out_b = a.adversary.update(source, target), b.adversary.update(source, target)
    assert out_a["loss_d"] == pytest.approx(out_b["loss_d"]) and out_a["d_acc"] == out_b["d_acc"]
    for p, q in zip(
        a.adversary.discs["main"].parameters(), b.adversary.discs["main"].parameters(), strict=True
    ):
        assert torch.equal(p, q)


def test_a_step_reads_no_value_off_the_device_and_a_log_interval_one(tiny_data, tmp_path, monkeypatch):
    """GPU steps never wait for the host: the loop's code turns tensors into Python values once per
    log interval (LossWindow), and once before a checkpoint between log lines; nowhere else in a step."""
    from tests.conftest import count_host_reads

    cfg, model, data = setup(tiny_data, tmp_path, **{"steps": 6, "log_every": 3, "checkpoint_every": 2})
    files = ("adapt/loop.py", "adapt/step.py", "symda/training.py", "models/losses.py", "terms/_adversary.py",
             "terms/adversarial.py", "terms/cross_entropy.py", "terms/entropy.py")  # fmt: skip
    reads = count_host_reads(monkeypatch, files, ("item", "tolist", "__bool__", "__float__", "__int__"))
    # Self-training with the adversarial and entropy terms: every kind of term in a step.
    from symda.terms.entropy import Entropy, EntropyConfig

    terms = [SourceCrossEntropy(), PseudoLabelCrossEntropy(), adversarial(), Entropy(EntropyConfig(0.01))]
    train_segmenter(job(cfg, data, terms, tmp_path / "run"), model, lambda m, checkpoint=None: None)
    in_steps = [r for r in reads if not r.endswith(" in values")]
    # The one host read in a step is of the pseudo-label batch while it is still on the host.
    assert in_steps == ["__bool__ in labelled"] * 6, in_steps
    # Log lines at steps 3 and 6, checkpoints at steps 2 and 4 between them (6's is the log line's).
    assert reads.count("tolist in values") == 4


def test_a_job_is_a_frozen_record_of_what_a_stage_trains(tiny_data, tmp_path):
    cfg, _, data = setup(tiny_data, tmp_path)
    j = job(cfg, data, [SourceCrossEntropy(), PseudoLabelCrossEntropy()], tmp_path)
    assert j.streams == ("source", "pseudo")  # the target stream is not read: never loaded
    with pytest.raises(dataclasses.FrozenInstanceError):
        j.seed = 1


@pytest.mark.parametrize("killed_at", [2, 4, 6, 8])
def test_a_build_killed_just_after_a_checkpoint_keeps_every_evaluation(
    tiny_data, tmp_path, monkeypatch, killed_at
):
    """Killed the moment a checkpoint lands (the window between writing it and reporting what was
    evaluated at its step), the resumed build's evaluations file equals an uninterrupted build's:
    no step evaluated before the kill is lost or evaluated twice."""
    import symda.adapt.loop as loop
    from symda.pipeline.selection import read_evaluations, recording_evaluations
    from symda.records import Evaluation

    cfg, model, data = setup(tiny_data, tmp_path, steps=8, eval_every=2, log_every=1)

    def evaluator(net, step):
        weight = float(sum(p.double().sum() for p in net.parameters()))
        return Evaluation(step, miou=weight, miou_se=0.0, per_class_iou={})

    def build(out, resume=False):
        return train_segmenter(job(cfg, data, [SourceCrossEntropy()], out, evaluator=evaluator, resume=resume),
                               copy.deepcopy(model), recording_evaluations(lambda *a, **k: None, out))  # fmt: skip

    build(tmp_path / "straight")
    write = loop.write_checkpoint

    def write_then_die(state, path):
        out = write(state, path)
        if state.step == killed_at:
            raise Stop
        return out

    monkeypatch.setattr(loop, "write_checkpoint", write_then_die)
    with pytest.raises(Stop):
        build(tmp_path / "killed")
    monkeypatch.setattr(loop, "write_checkpoint", write)
    build(tmp_path / "killed", resume=True)

    straight, resumed = (read_evaluations(tmp_path / d) for d in ("straight", "killed"))
    assert [e.step for e in resumed] == [e.step for e in straight] == [2, 4, 6, 8]
    assert [e.miou for e in resumed] == [e.miou for e in straight]
