"""Where stage loops run: Runtime, batch sharding, resource checks, and a 2-worker gloo Ray Train run of
the paper's GPU config (configs/gta5/full.yaml) on tiny inputs."""

from __future__ import annotations

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
    from symda.pipeline import NetworkPath, segmenter_stage

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
