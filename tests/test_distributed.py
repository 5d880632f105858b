"""Where stage loops run: Runtime, batch sharding, resource checks, and a 2-worker gloo Ray Train run of
the paper's GPU config (configs/gta5/full.yaml) on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from symda.artifacts import ArtifactStore
from symda.config import ConfigError, ScaleConfig, load_config
from symda.data.dataset import ResumableBatchSampler
from symda.distributed import Runtime, check_resources, run_stage

REPO = Path(__file__).resolve().parents[1]


def test_ranks_share_out_exactly_the_single_process_batches():
    single = list(ResumableBatchSampler(10, 4, seed=3, steps=6))
    shards = [list(ResumableBatchSampler(10, 4, seed=3, steps=6, rank=r, world_size=2)) for r in (0, 1)]
    for step, batch in enumerate(single):
        together = shards[0][step] + shards[1][step]
        assert sorted(together) == sorted(batch) and len(shards[0][step]) == 2


def test_default_runtime_is_one_cpu_process_and_averaging_is_a_no_op():
    rt = Runtime()
    assert rt.device.type == "cpu" and rt.is_main and rt.world_size == 1
    lin = torch.nn.Linear(2, 1)
    lin(torch.ones(1, 2)).sum().backward()
    before = lin.weight.grad.clone()
    rt.average_gradients(lin)
    assert torch.equal(lin.weight.grad, before)
    with rt.autocast():
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32


def test_bf16_autocast_runs_the_adversarial_step_on_cpu(tiny_data):
    from symda.adapt.loop import SegmenterJob, train_segmenter
    from symda.adapt.networks import build_segmenter
    from symda.data import build_dataset
    from symda.terms import adaptation_terms
    from symda.terms.cross_entropy import SourceCrossEntropy

    cfg = load_config(overrides={"data.source_root": str(tiny_data["source"]),
                                 "data.target_root": str(tiny_data["target"]), "data.source_size": [32, 64],
                                 "data.target_size": [32, 64], "train.steps": 2, "train.batch_size": 2,
                                 "adapt.adversarial.d_channels": 8})  # fmt: skip
    reports = []
    data = {role: build_dataset(cfg.data, cfg.synth, role) for role in ("source", "target")}
    job = SegmenterJob(cfg.train, data, (SourceCrossEntropy(), *adaptation_terms(cfg.adapt)),
                       Path(tiny_data["source"]).parent / "bf16")  # fmt: skip
    metrics = train_segmenter(job, build_segmenter(cfg.model), lambda m, checkpoint=None: reports.append(m),
                              Runtime(precision="bf16", channels_last=True))  # fmt: skip
    assert metrics["step"] == 2 and all(
        torch.isfinite(torch.tensor(r["loss"])) for r in reports if "loss" in r
    )


def test_a_group_the_cluster_cannot_place_is_refused_before_it_starts():
    with pytest.raises(ConfigError, match=r"asks for 8 GPUs .* has 0"):
        check_resources(ScaleConfig(num_workers=8, use_gpu=True), {"CPU": 16.0})
    with pytest.raises(ConfigError, match="asks for 4 CPUs"):
        check_resources(ScaleConfig(num_workers=4, cpus_per_worker=1), {"CPU": 2.0})
    check_resources(ScaleConfig(num_workers=2), {"CPU": 2.0})


def test_in_process_stage_gets_the_local_runtime(tmp_path):
    seen = []
    run_stage(lambda rt, report: (seen.append(rt), report({"step": 1})), ScaleConfig(), tmp_path,
              lambda m, checkpoint=None: seen.append(m), tmp_path / "ray")  # fmt: skip
    assert seen[0] == Runtime() and seen[1] == {"step": 1}


def test_paper_gpu_config_trains_on_two_gloo_workers_and_rank0_checkpoint_loads(
    ray_session, tiny_data, tmp_path
):
    """configs/gta5/full.yaml (DeepLab V2 ResNet-101, multi-level discriminators, SGD, 4 GPU workers)
    with only its sizes, data and scale shrunk: 2 CPU workers of Ray Train with gloo run F_T's
    adversarial loop; reports reach the caller; rank 0's checkpoint loads into the paper's model.

    BatchNorm trains here (bn_mode train): frozen statistics of a randomly initialised ResNet-101
    (mean 0, var 1) blow the activations up; the paper freezes COCO-initialised statistics."""
    from symda.adapt.networks import load_segmenter
    from symda.pipeline import NetworkPath, read_evaluations, segmenter_stage

    cfg = load_config(REPO / "configs/gta5/full.yaml", [
        f"data.source_root={tiny_data['source']}", f"data.target_root={tiny_data['target']}",
        "data.source_size=[32,64]", "data.target_size=[32,64]", "data.num_workers=0", "model.weights=none",
        "model.allow_random_init=true", "model.bn_mode=train", "train.steps=2", "train.batch_size=2",
        "train.log_every=1", "train.checkpoint_every=1", "train.eval_every=0", "adapt.adversarial.d_channels=8",
        "eval.batch_size=2", "scale.use_gpu=false", "scale.num_workers=2", "scale.cpus_per_worker=1",
        "scale.max_failures=0", f"artifacts_dir={tmp_path / 'store'}",
    ])  # fmt: skip
    assert cfg.model.backbone == "resnet101" and cfg.model.aux_head and cfg.train.optimizer == "sgd"
    reports = []
    store = ArtifactStore(cfg.artifacts_dir)
    net = NetworkPath("T", tiny_data["source"], tiny_data["target"], tiny_data["target"], {}, "data")
    art = segmenter_stage(cfg, store, net, 0, lambda m, checkpoint=None: reports.append((m, checkpoint)))
    steps = [m for m, _ in reports if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2] and all(
        torch.isfinite(torch.tensor(m["loss"])) for m in steps
    )
    assert {"loss_adv", "loss_adv_aux", "loss_d"} <= set(steps[0])  # both discriminator levels trained
    assert all(m["stage"] == "F_T_r0" for m, _ in reports)
    assert any(ckpt is not None for _, ckpt in reports)  # rank 0 wrote and reported checkpoints
    assert [e.step for e in read_evaluations(art.path)] == [2]  # rank 0 recorded its evaluation too
    state = torch.load(art.path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 2 and set(state["terms"]["OutputAdversarial"]["discriminators"]) == {
        "main",
        "aux",
    }
    model = load_segmenter(cfg.model, art.path / "checkpoint.pt")
    assert model(torch.zeros(1, 3, 32, 64))["main"].shape[1] == 19
    assert list((tmp_path / "store" / "_ray_train").iterdir())  # Ray Train kept its run (resumable)


def test_a_crashed_worker_group_restarts_from_its_last_checkpoint(ray_session, tmp_path):
    """scale.max_failures = 1: rank 0 fails once after step 2's checkpoint; Ray Train restarts the
    group of 2, the loop resumes from that checkpoint (step 3, not 1), and the caller sees every step."""
    work = tmp_path / "work"
    work.mkdir()

    def loop(rt: Runtime, report) -> None:
        state = work / "state.txt"
        start = int(state.read_text()) if state.is_file() else 0
        # Every rank has read its start before rank 0 writes again (the real loops get this from
        # their first gradient all-reduce; without it a late rank 1 starts a step ahead and hangs).
        import torch.distributed as dist

        starts = torch.tensor([float(start)], dtype=torch.float64)
        dist.all_reduce(starts)
        assert starts.item() == start * rt.world_size
        if rt.rank == 0:
            with (work / "starts.txt").open("a") as f:
                f.write(f"{start}\n")
        for step in range(start + 1, 5):
            if rt.rank == 0:
                state.write_text(str(step))
            report({"step": step}, checkpoint=state if rt.rank == 0 else None)
            if step == 2 and rt.rank == 0 and not (work / "crashed").exists():
                (work / "crashed").touch()
                raise RuntimeError("worker crash (test)")

    reports = []
    scale = ScaleConfig(num_workers=2, cpus_per_worker=1, max_failures=1)
    run_stage(loop, scale, work, lambda m, checkpoint=None: reports.append(m["step"]), tmp_path / "ray")
    assert (work / "starts.txt").read_text().split() == ["0", "2"]  # restarted once, from step 2
    assert reports == [1, 2, 3, 4]


def _gta5_flags(config: str, tiny_data, tmp_path: Path, *extra: str) -> list[str]:
    """`--config configs/gta5/<config>.yaml` with only its data, sizes and steps shrunk to tiny_data."""
    sets = [f"data.source_root={tiny_data['source']}", f"data.target_root={tiny_data['target']}",
            "data.num_workers=0", f"artifacts_dir={tmp_path / 'store'}", "track.tensorboard=false", *extra]  # fmt: skip
    return [
        "--config",
        str(REPO / "configs/gta5" / f"{config}.yaml"),
        *(f for s in sets for f in ("--set", s)),
    ]


TINY_SOURCE_ONLY = ("data.source_size=[32,64]", "data.target_size=[32,64]", "model.weights=none",
                    "model.allow_random_init=true", "model.bn_mode=train", "train.steps=2", "train.batch_size=2",
                    "train.log_every=1", "train.checkpoint_every=1", "train.eval_every=0", "eval.batch_size=2")  # fmt: skip


def test_symda_train_runs_where_scale_says_a_two_worker_gloo_group(ray_session, tiny_data, tmp_path):
    """`symda train` honours scale as `symda run` does: scale.num_workers = 2 runs the source-only loop
    as a Ray Train group of 2 (gloo on the CPU); rank 0's checkpoint and the metrics come back."""
    from symda.cli import main

    out = tmp_path / "run"
    flags = _gta5_flags("source_only", tiny_data, tmp_path, *TINY_SOURCE_ONLY, "scale.use_gpu=false",
                        "scale.num_workers=2", "scale.cpus_per_worker=1", "scale.max_failures=0")  # fmt: skip
    assert main(["train", *flags, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 2 and 0 <= metrics["val_miou"] <= 100
    assert torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["step"] == 2
    assert (out / "ray_train_run").is_file() and list((tmp_path / "store" / "_ray_train").iterdir())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2] and all(r["stage"] == "train" for r in log)


def test_symda_translate_train_runs_where_scale_says_a_two_worker_gloo_group(
    ray_session, tiny_data, tmp_path
):
    """`symda translate train` with the paper's StarGAN config: scale.num_workers = 2 trains it as a Ray
    Train group of 2 (each rank half of every batch); the translator comes back into the store."""
    from symda.cli import main

    flags = _gta5_flags("translate", tiny_data, tmp_path, "translate.load_size=[32,64]", "translate.image_size=[32,32]",
                        "translate.g_conv_dim=8", "translate.d_conv_dim=8", "translate.g_repeat_num=1",
                        "translate.d_repeat_num=3", "translate.batch_size=4", "translate.generator_steps=1",
                        "translate.n_critic=1", "translate.log_every=1", "translate.sample_every=1",
                        "translate.checkpoint_every=1", "scale.use_gpu=false", "scale.num_workers=2",
                        "scale.cpus_per_worker=1", "scale.max_failures=0")  # fmt: skip
    assert main(["translate", "train", *flags, "--out", str(tmp_path / "run")]) == 0
    (translator,) = (tmp_path / "store").glob("translator/*/translator.pt")
    assert "G" in torch.load(translator, map_location="cpu", weights_only=True)  # the generator
    assert list((tmp_path / "store" / "_ray_train").iterdir())  # the loop ran as a Train group


@pytest.mark.parametrize("config", ["source_only", "translate", "full"])
def test_the_paper_configs_ask_for_the_gpu(config):
    """configs/gta5/*.yaml train on the GPU: scale.use_gpu, and a group that fits their batch."""
    cfg = load_config(REPO / "configs/gta5" / f"{config}.yaml")
    assert cfg.scale.use_gpu
    batch = cfg.translate.batch_size if config == "translate" else cfg.train.batch_size
    assert batch % max(cfg.scale.num_workers, 1) == 0


def test_symda_train_on_the_paper_config_would_use_the_gpu(tiny_data, tmp_path, monkeypatch):
    """`symda train --config configs/gta5/source_only.yaml` hands its loop to run_stage with the config's
    scale, and on a machine that has a GPU the in-process runtime of that scale is the GPU (no GPU here:
    torch.cuda.is_available is faked, and the loop is not run)."""
    import symda.distributed
    import symda.pipeline.run
    from symda.cli import main

    seen = []

    class Stop(Exception):
        pass

    def fake_run_stage(loop, scale, work_dir, report, storage):
        seen.append(scale)
        raise Stop

    monkeypatch.setattr(symda.pipeline.run, "run_stage", fake_run_stage)
    with pytest.raises(Stop):
        main(["train", *_gta5_flags("source_only", tiny_data, tmp_path, *TINY_SOURCE_ONLY),
              "--out", str(tmp_path / "run")])  # fmt: skip
    (scale,) = seen
    assert scale.use_gpu and scale.num_workers == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert symda.distributed.local_runtime(scale).device.type == "cuda"


def test_the_paper_translator_config_builds_the_translator_that_the_full_method_reuses():
    """`symda translate train --config configs/gta5/translate.yaml` stores the translator under the key
    that `symda run --config configs/gta5/full.yaml` looks up (same recipe, same data view)."""
    from symda import stage_keys

    full, translate = (load_config(REPO / "configs/gta5" / f"{c}.yaml") for c in ("full", "translate"))
    assert stage_keys.translator_key(translate) == stage_keys.translator_key(full)
