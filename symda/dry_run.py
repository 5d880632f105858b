"""A dry run of a real-data config before the datasets are copied: every stage on generated data.

`symda dry-run --config configs/gta5/full.yaml --work DIR` runs the config unchanged but for what a
dry run must change: SynthCity generated under DIR in GTA5's and Cityscapes' on-disk layouts at the
real datasets' image sizes (times --scale), a few images a domain, every training stage cut to a few
steps, one CPU process. The weights file the config names is loaded (strictly) when it is there;
where it is not, a random file in the field's init-file layout stands in, and the run says so. What
it proves: the config loads and validates, the weights file fits the network, the loaders read the
layouts, every stage runs at the real resolutions (seconds and peak memory per stage are in the
record), and the output folders are writable. What it cannot: that the real datasets are where the
config says (`symda check-data --config CFG` checks that once they are copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig, load_config

# The real datasets' image sizes (height, width), which SynthCity is generated at.
REAL_IMAGE_SIZES = {"gta5": (1052, 1914), "cityscapes": (1024, 2048)}
LEAST_CROP = 64  # the paper's 6-layer StarGAN critic halves its input 6 times


def scaled(size: tuple[int, int], scale: float, least: int = 8) -> list[int]:
    """(height, width) times `scale`, rounded, each at least `least`."""
    return [max(least, round(v * scale)) for v in size]


def write_field_init_file(path: Path, backbone: str = "resnet101", head_classes: int = 21) -> Path:
    """Random weights under the field's init-file names: "Scale."-prefixed torchvision-named backbone
    tensors and a single-level ASPP head "layer5" for another class count, as in
    DeepLab_resnet_pretrained_init-f81d91e8.pth (the loader leaves that head out)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, backbone)(weights=None)
    sd = {
        k: v
        for k, v in net.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    channels = net.fc.in_features
    for i in range(4):
        sd[f"layer5.conv2d_list.{i}.weight"] = torch.randn(head_classes, channels, 3, 3) * 0.01
        sd[f"layer5.conv2d_list.{i}.bias"] = torch.zeros(head_classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"Scale." + k: v for k, v in sd.items()}, path)
    return path


def dry_run_overrides(
    cfg: ExperimentConfig, work: Path, scale: float = 1.0, images: int = 4, steps: int = 2
) -> dict[str, Any]:
    """The overrides that turn `cfg` into its dry run under `work` (see the module docstring)."""
    if cfg.data.source != "gta5":
        raise ValueError(
            f"data.source: {cfg.data.source!r}: a dry run generates GTA5-layout sources only (SynthCity)"
        )
    src, tgt = REAL_IMAGE_SIZES["gta5"], REAL_IMAGE_SIZES["cityscapes"]
    sets: dict[str, Any] = {
        "artifacts_dir": str(work / "artifacts"),
        # SynthCity in place of the datasets, at their real sizes
        "data.source_root": "", "data.target_root": "", "synth.root": str(work / "data"),
        "synth.height": scaled(tgt, scale)[0], "synth.width": scaled(tgt, scale)[1],
        "synth.source_height": scaled(src, scale)[0], "synth.source_width": scaled(src, scale)[1],
        "synth.n_source": images, "synth.n_target": images, "synth.n_val": max(1, images // 2),
        "data.source_size": scaled(cfg.data.source_size, scale), "data.target_size": scaled(cfg.data.target_size, scale),
        "data.num_workers": 0, "data.source_list": "", "data.target_list": "",
        # every stage cut to a few steps, one process on the CPU
        "train.steps": steps, "train.batch_size": 1, "train.log_every": 1, "train.eval_every": 0,
        "train.checkpoint_every": steps, "self_train.steps": steps,
        "translate.generator_steps": steps, "translate.log_every": 1, "translate.sample_every": steps,
        "translate.checkpoint_every": steps,
        "translate.load_size": scaled(cfg.translate.load_size, scale, LEAST_CROP),
        "translate.image_size": scaled(cfg.translate.image_size, scale, LEAST_CROP),
        "scale.use_gpu": False, "scale.num_workers": 0,
    }  # fmt: skip
    if cfg.data.crop_size:
        sets["data.crop_size"] = scaled(cfg.data.crop_size, scale)
    return sets


def dry_run_config(
    config: str | Path, overrides: list[str], work: Path, scale: float = 1.0, images: int = 4, steps: int = 2
) -> tuple[ExperimentConfig, str]:
    """(the dry run of the config file `config` with the user's `overrides`, a line on the weights it
    loads): the config's own weights file when it is there, else a random field-layout stand-in
    written under work/pretrained."""
    work = Path(work).resolve()
    cfg = load_config(config, overrides)
    sets = dry_run_overrides(cfg, work, scale, images, steps)
    weights = cfg.model.weights
    note = f"model.weights: {weights}"
    if weights.endswith((".pth", ".pt")):
        if Path(weights).is_file():
            note = f"model.weights: {weights} (the config's file, loaded strictly)"
        else:
            stand_in = write_field_init_file(work / "pretrained" / Path(weights).name, cfg.model.backbone)
            sets["model.weights"] = str(stand_in)
            note = (f"model.weights: {weights} is not there yet; a random file in the field's layout stands in "
                    f"({stand_in})")  # fmt: skip
    return load_config(config, [*overrides, *(f"{k}={v}" for k, v in sets.items())]), note
