"""The training loop's adaptation inputs: output-space adversarial term and pseudo-label self-training."""

from __future__ import annotations

import copy
import types

import pytest
import torch

from symda.adapt import loop
from symda.adapt.loop import (
    adversarial_step,
    build_discriminators,
    discriminator_step,
    generator_adversarial_loss,
    output_probabilities,
    pseudo_label_loss,
    train_segmenter,
)
from symda.config import AdaptConfig, load_config
from symda.data import build_dataset
from symda.models.build import build_segmenter
from symda.models.discriminator import OutputDiscriminator

ADV_KEYS = {"step", "loss", "loss_seg", "loss_adv", "loss_d", "d_acc", "lr", "images_per_s"}


def setup(tiny_data, tmp_path, aux_head=False, **train):
    """(train config, model, source, target, target-with-labels) for 32x64 images, resnet18 layer3."""
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
    sets = [build_dataset(cfg.data, cfg.synth, role) for role in ("source", "target", "target_labelled")]
    return cfg.train, model, *sets


def adapt_cfg(**kw) -> AdaptConfig:
    return AdaptConfig(**{"lambda_adv": 0.01, "d_channels": 8, "d_lr": 1e-3, **kw})


def collect(reports):
    return lambda m, checkpoint=None: reports.append(m)


def test_adversarial_run_reports_every_key_and_trains_both_discriminators(tiny_data, tmp_path):
    cfg, model, source, target, _ = setup(tiny_data, tmp_path, aux_head=True)
    adapt = adapt_cfg(lambda_adv_aux=0.002)
    reports = []
    train_segmenter(
        cfg, model, source, None, tmp_path / "run", collect(reports), target_set=target, adapt=adapt
    )
    assert [r["step"] for r in reports] == [2, 4, 4]
    for r in reports[:-1]:
        assert ADV_KEYS | {"loss_adv_aux", "loss_d_aux"} == set(r)
        assert 0 <= r["d_acc"] <= 1 and r["loss_d"] > 0 and r["loss_adv"] > 0
        assert r["loss"] > r["loss_seg"]  # the weighted adversarial term is part of the objective
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert set(state["discriminators"]) == set(state["d_optimizers"]) == {"main", "aux"}
    fresh, _ = build_discriminators(["main", "aux"], 19, adapt, seed=0)  # what the run started from
    for name, d in fresh.items():
        trained = state["discriminators"][name]
        assert any(not torch.equal(v, trained[k]) for k, v in d.state_dict().items()), name


def test_lambda_adv_zero_builds_no_discriminator(tiny_data, tmp_path):
    cfg, model, source, target, _ = setup(tiny_data, tmp_path)
    reports = []
    train_segmenter(
        cfg,
        model,
        source,
        None,
        tmp_path / "run",
        collect(reports),
        target_set=target,
        adapt=adapt_cfg(lambda_adv=0.0),
    )
    assert set(reports[0]) == {"step", "loss", "loss_seg", "lr", "images_per_s"}
    assert reports[0]["loss"] == reports[0]["loss_seg"]
    assert "discriminators" not in torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)


def test_self_training_reports_pseudo_loss_and_takes_target_images_from_pseudo_set(
    tiny_data, tmp_path, monkeypatch
):
    # The tiny target's gtFine labels stand in for pseudo labels; no target_set: the adversarial
    # term sees the pseudo set's images.
    cfg, model, source, _, pseudo = setup(tiny_data, tmp_path)
    ticks = iter(range(1000))
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    reports = []
    train_segmenter(
        cfg,
        model,
        source,
        None,
        tmp_path / "run",
        collect(reports),
        pseudo_set=pseudo,
        adapt=adapt_cfg(),
        pseudo_weight=0.5,
    )
    first = reports[0]
    assert ADV_KEYS | {"loss_pseudo"} == set(first)
    assert first["loss_pseudo"] > 0
    assert first["loss"] > first["loss_seg"] + 0.5 * first["loss_pseudo"]  # plus lambda * adv
    # A clock that advances 1 s per reading: 2 steps of a source and a pseudo batch of 2 = 8 images; the
    # adversarial term's target batch is the pseudo batch, so it is not counted twice.
    assert first["images_per_s"] == 8


def test_resumed_adversarial_run_matches_the_straight_run(tiny_data, tmp_path):
    cfg, model, source, target, _ = setup(tiny_data, tmp_path, steps=6, checkpoint_every=3)
    init = copy.deepcopy(model.state_dict())
    kw = {"target_set": target, "adapt": adapt_cfg()}
    train_segmenter(cfg, model, source, None, tmp_path / "a", lambda *a, **k: None, **kw)

    class Stop(Exception):
        pass

    def stop_at_step_4(metrics, checkpoint=None):
        if metrics["step"] >= 4:
            raise Stop

    model.load_state_dict(init)
    with pytest.raises(Stop):
        train_segmenter(cfg, model, source, None, tmp_path / "c", stop_at_step_4, **kw)
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)["step"] == 3
    model.load_state_dict(init)  # a fresh process would start from a fresh model too
    train_segmenter(cfg, model, source, None, tmp_path / "c", lambda *a, **k: None, resume=True, **kw)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    c = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)
    assert c["step"] == 6
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), c["model"][k].float(), atol=1e-5), k
    for k, v in a["discriminators"]["main"].items():
        assert torch.allclose(v, c["discriminators"]["main"][k], atol=1e-6), k


def test_resume_refuses_a_checkpoint_without_discriminators(tiny_data, tmp_path):
    cfg, model, source, target, _ = setup(tiny_data, tmp_path, steps=2)
    train_segmenter(cfg, model, source, None, tmp_path / "run", lambda *a, **k: None)
    with pytest.raises(
        ValueError, match=r"checkpoint.pt: holds discriminators \[\] but this run has \['main'\]"
    ):
        train_segmenter(
            cfg, model, source, None, tmp_path / "run", lambda *a, **k: None, resume=True,
            target_set=target, adapt=adapt_cfg(),
        )  # fmt: skip


def test_missing_inputs_are_refused(tiny_data, tmp_path):
    cfg, model, source, target, _ = setup(tiny_data, tmp_path)
    with pytest.raises(ValueError, match="need adapt"):
        train_segmenter(cfg, model, source, None, tmp_path / "a", lambda *a, **k: None, target_set=target)
    with pytest.raises(ValueError, match="needs target images"):
        train_segmenter(cfg, model, source, None, tmp_path / "b", lambda *a, **k: None, adapt=adapt_cfg())


# ------------------------------------------------------------------------------ the step functions


def _outputs(requires_grad: bool) -> dict[str, torch.Tensor]:
    return {"main": torch.randn(2, 19, 4, 8, requires_grad=requires_grad)}


def test_generator_loss_puts_no_gradient_into_the_discriminator():
    torch.manual_seed(0)
    d = OutputDiscriminator(19, 8)
    target = _outputs(True)
    losses = generator_adversarial_loss({"main": d}, output_probabilities(target, (32, 64)), "bce")
    losses["main"].backward()
    assert all(p.grad is None for p in d.parameters())
    assert all(p.requires_grad for p in d.parameters())  # unfrozen again for its own step
    assert target["main"].grad is not None and target["main"].grad.abs().sum() > 0


def test_adversarial_step_updates_d_exactly_as_its_own_step():
    """The G part of the step leaves D as it was: D ends where a D step alone takes it."""
    torch.manual_seed(0)
    d = OutputDiscriminator(19, 8)
    d_alone = copy.deepcopy(d)
    opts = {"main": torch.optim.SGD(d.parameters(), lr=0.1)}
    opts_alone = {"main": torch.optim.SGD(d_alone.parameters(), lr=0.1)}
    source, target = _outputs(False), _outputs(True)
    out = adversarial_step({"main": d}, opts, {"main": 0.5}, source, target, (32, 64), (32, 64), "lsgan")
    alone = discriminator_step(
        {"main": d_alone}, opts_alone, output_probabilities(source, (32, 64)),
        output_probabilities(target, (32, 64)), "lsgan",
    )  # fmt: skip
    assert out["loss_d"] == pytest.approx(alone["loss_d"]) and out["d_acc"] == alone["d_acc"]
    assert out["adv_weighted"] == pytest.approx(0.5 * out["loss_adv"])
    for p, q in zip(d.parameters(), d_alone.parameters(), strict=True):
        assert torch.equal(p, q)
    assert target["main"].grad is not None  # the segmenter side did get the adversarial gradient


def test_all_ignored_pseudo_labels_give_zero_loss_not_nan():
    logits = {"main": torch.randn(1, 19, 4, 8, requires_grad=True)}
    loss = pseudo_label_loss(logits, torch.full((1, 32, 64), 255, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()


def test_a_step_reads_no_value_off_the_device_and_a_log_interval_one(tiny_data, tmp_path, monkeypatch):
    """GPU steps never wait for the host: the loop's own code turns tensors into Python values once per
    log interval (LogWindow), and once before a checkpoint between log lines; nowhere else in a step."""
    from tests.conftest import count_host_reads

    cfg, model, source, target, labelled = setup(tiny_data, tmp_path, **{"steps": 6, "log_every": 3,
                                                                         "checkpoint_every": 2})  # fmt: skip
    reads = count_host_reads(
        monkeypatch, "adapt/loop.py", ("item", "tolist", "__bool__", "__float__", "__int__")
    )
    # Self-training with the adversarial term: every loss term of a step is there.
    train_segmenter(cfg, model, source, None, tmp_path / "run", lambda m, checkpoint=None: None,
                    pseudo_set=labelled, adapt=adapt_cfg())  # fmt: skip
    in_steps = [r for r in reads if not r.endswith(" in values")]
    # The one host read in a step is of the pseudo-label batch while it is still on the host.
    assert in_steps == ["__bool__ in train_step"] * 6, in_steps
    # Log lines at steps 3 and 6, checkpoints at steps 2 and 4 between them (6's is the log line's).
    assert reads.count("tolist in values") == 4
