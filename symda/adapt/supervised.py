"""The supervised segmentation loop: source-only and oracle training.

A plain function: config section, model and data in, a checkpoint out. Its only tie to the outside
is `report(metrics, checkpoint)`: tests pass a list's append, the CLI prints, Ray passes its report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from symda.config import TrainConfig
from symda.data.dataset import ResumableBatchSampler, SegmentationDataset
from symda.data.labels import IGNORE_INDEX
from symda.evaluate import evaluate, segmenter_probabilities
from symda.io import atomic_torch_save
from symda.models import param_groups

Report = Callable[..., None]
"""report(metrics: dict, checkpoint: Path | None = None)."""

AUX_LOSS_WEIGHT = 0.1  # AdaptSegNet's weight of the auxiliary (layer3) segmentation loss


def segmentation_loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main (and auxiliary) logits, upsampled to the (N, H, W) labels."""
    size = labels.shape[-2:]
    loss = F.cross_entropy(
        F.interpolate(outputs["main"], size=size, mode="bilinear", align_corners=False),
        labels,
        ignore_index=IGNORE_INDEX,
    )
    if "aux" in outputs:
        aux = F.interpolate(outputs["aux"], size=size, mode="bilinear", align_corners=False)
        loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(aux, labels, ignore_index=IGNORE_INDEX)
    return loss


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (the paper's) or Adam over the backbone at lr and the classifier(s) at head_lr_mult * lr."""
    groups = param_groups(model, cfg.lr, cfg.head_lr_mult)
    for g in groups:
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def poly_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float) -> float:
    """Set every group to initial_lr * (1 - step/total)^power; return the backbone's lr."""
    factor = (1 - step / total) ** power
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def train_segmenter(
    cfg: TrainConfig,
    model: torch.nn.Module,
    train_set: SegmentationDataset,
    val_set: SegmentationDataset | None,
    out_dir: Path,
    report: Report,
    seed: int = 0,
    resume: bool = False,
    eval_protocol: int = 19,
    progress: bool = False,
) -> dict[str, Any]:
    """Train `model` on labelled `train_set`; checkpoint to out_dir/checkpoint.pt; return final metrics.

    Batches are (N, 3, h, w) images with (N, h, w) int64 labels (255 = ignore). With resume, training
    continues from the checkpoint's step with the same batches it would have seen uninterrupted.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    optimizer = make_optimizer(model, cfg)
    start = 0
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    sampler = ResumableBatchSampler(len(train_set), cfg.batch_size, seed, cfg.steps, start)
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, num_workers=0, persistent_workers=False
    )

    def save(step: int) -> Path:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
        return atomic_torch_save(state, ckpt_path)

    def validate() -> dict[str, Any]:
        model.eval()
        scores = evaluate(segmenter_probabilities(model), val_set, eval_protocol, progress=progress)
        model.train()
        return {"val_miou": scores.miou, "val_per_class_iou": scores.per_class}

    model.train()
    running, count, t0 = 0.0, 0, time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not progress, dynamic_ncols=True)
    step = start
    for step, batch in enumerate(loader, start=start + 1):
        lr = poly_lr(optimizer, step - 1, cfg.steps, cfg.poly_power)
        loss = segmentation_loss(model(batch["image"]), batch["label"])
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running, count = running + loss.item(), count + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - t0
            metrics = {
                "step": step,
                "loss": running / count,
                "lr": lr,
                "images_per_s": count * cfg.batch_size / max(elapsed, 1e-9),
            }
            running, count, t0 = 0.0, 0, time.perf_counter()
            if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.steps and val_set is not None:
                metrics.update(validate())
            checkpoint = save(step) if step % cfg.checkpoint_every == 0 else None
            report(metrics, checkpoint=checkpoint)
        elif step % cfg.checkpoint_every == 0:
            save(step)
    bar.close()
    final: dict[str, Any] = {"step": max(step, start)}
    checkpoint = save(final["step"])
    if val_set is not None:
        final.update(validate())
    report(final, checkpoint=checkpoint)
    return final
