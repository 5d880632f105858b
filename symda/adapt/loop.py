"""The one segmentation training loop of stages 2 and 4: source-only, adversarial and self-training.

A plain function: config sections, model and data in, a checkpoint out. Its only tie to the outside
is `report(metrics, checkpoint)`: tests pass a list's append, the CLI prints, Ray passes its report.
Each step adds what its inputs switch on:

- always: cross-entropy on a labelled source batch (main + 0.1 * aux logits);
- `pseudo_set`: `pseudo_weight` * cross-entropy on target images with pseudo labels (self-training);
- `adapt.lambda_adv > 0`: AdaptSegNet's output-space adversarial term, one discriminator on the main
  output and one on the auxiliary output when the model has an aux head and `adapt.lambda_adv_aux > 0`.

Which target images the adversarial term sees: `target_set`'s when it is given, otherwise
`pseudo_set`'s (their pseudo labels are ignored for that term, and the pseudo-label forward pass is
reused, so self-training with the adversarial term kept costs no third forward pass).

Discriminators see the softmax of the logits upsampled (bilinear) to the input image size, as
AdaptSegNet does: the feature-resolution output (1/8 of the input) is too small for five stride-2
convs at the crop sizes used here, and upsampling keeps D's receptive field in image pixels.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from symda.config import AdaptConfig, TrainConfig
from symda.data.dataset import ResumableBatchSampler, SegmentationDataset
from symda.data.labels import IGNORE_INDEX, NUM_CLASSES
from symda.distributed import Report, Runtime
from symda.evaluate import evaluate, segmenter_probabilities
from symda.io import atomic_torch_save
from symda.models import param_groups
from symda.models.discriminator import OutputDiscriminator, d_decisions_correct, gan_loss

AUX_LOSS_WEIGHT = 0.1  # AdaptSegNet's weight of the auxiliary (layer3) segmentation loss

# Sampler stream ids: each dataset draws its batches from its own seed, so adding a stream never
# changes another's batches (and the source stream keeps the plain seed of the supervised loop).
_TARGET_STREAM, _PSEUDO_STREAM, _DISCRIMINATOR_INIT = 1, 2, 3


# ------------------------------------------------------------------------------ segmentation pieces


def segmentation_loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main (and auxiliary) logits, upsampled to the (N, H, W) labels."""
    size = labels.shape[-2:]
    loss = F.cross_entropy(
        F.interpolate(outputs["main"].float(), size=size, mode="bilinear", align_corners=False),
        labels,
        ignore_index=IGNORE_INDEX,
    )
    if "aux" in outputs:
        aux = F.interpolate(outputs["aux"].float(), size=size, mode="bilinear", align_corners=False)
        loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(aux, labels, ignore_index=IGNORE_INDEX)
    return loss


def pseudo_label_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, labelled: bool | None = None
) -> torch.Tensor:
    """`segmentation_loss` on (N, H, W) pseudo labels; 0 (with a graph) when every pixel is ignored.

    Why: thresholded pseudo labels can leave a whole crop at 255, where cross-entropy's mean over zero
    pixels is NaN; such a batch simply carries no pseudo-label signal. `labelled`: whether any pixel
    is labelled, when the caller knows it (train_step reads it off the batch before it goes to the
    GPU: asking the device would cost a host-device sync every step).
    """
    if labelled is None:
        labelled = bool((labels != IGNORE_INDEX).any())
    if not labelled:
        return outputs["main"].sum() * 0.0
    return segmentation_loss(outputs, labels)


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


def _check_finite(name: str, value: float, step: int) -> None:
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite training loss {value} at step {step} ({name})")


# Losses stay 0-dim tensors on the device through a step (no .item()): a GPU step then never waits for
# the host. LogWindow turns a whole log interval's losses into floats with one transfer, and checks them.
Losses = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------- adversarial pieces


def adversarial_weights(model: torch.nn.Module, adapt: AdaptConfig | None) -> dict[str, float]:
    """{output name: lambda} of the discriminators to build; empty when the adversarial term is off.

    "main" when adapt.lambda_adv > 0; "aux" as well when the model has an aux head and lambda_adv_aux > 0.
    """
    if adapt is None or adapt.lambda_adv <= 0:
        return {}
    weights = {"main": adapt.lambda_adv}
    if getattr(model, "aux_classifier", None) is not None and adapt.lambda_adv_aux > 0:
        weights["aux"] = adapt.lambda_adv_aux
    return weights


def build_discriminators(
    names: Iterable[str], num_classes: int, adapt: AdaptConfig, seed: int
) -> tuple[dict[str, OutputDiscriminator], dict[str, torch.optim.Optimizer]]:
    """One OutputDiscriminator and its Adam(d_lr, (d_beta1, d_beta2)) per output name.

    Initialised from their own seed inside a forked RNG, so building them leaves the global torch RNG
    (and hence everything else in the run) exactly as without them.
    """
    discs, opts = {}, {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_stream_seed(seed, _DISCRIMINATOR_INIT))
        for name in names:
            d = OutputDiscriminator(num_classes, adapt.d_channels)
            opt = torch.optim.Adam(d.parameters(), lr=adapt.d_lr, betas=(adapt.d_beta1, adapt.d_beta2))
            for g in opt.param_groups:
                g["initial_lr"] = g["lr"]  # poly_lr decays from here, as for the segmenter
            discs[name], opts[name] = d.train(), opt
    return discs, opts


def output_probabilities(outputs: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """{name: (N, C, h, w) logits} -> {name: (N, C, H, W) softmax of the logits upsampled to `size`}."""
    return {
        name: torch.softmax(F.interpolate(logits, size=size, mode="bilinear", align_corners=False), dim=1)
        for name, logits in outputs.items()
    }


@contextmanager
def frozen(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Parameters of `modules` do not require grad inside the block (and are restored after it).

    Autograd records requires_grad when an op runs, so a loss computed inside the block never puts
    gradients into these parameters, even when it is backpropagated after the block has ended.
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def generator_adversarial_loss(
    discs: dict[str, OutputDiscriminator], target_probs: dict[str, torch.Tensor], kind: str
) -> dict[str, torch.Tensor]:
    """{name: GAN loss of D_name calling the (N, C, H, W) target probabilities "source"}, D frozen.

    The losses carry gradients into the segmenter only; the discriminators' parameters get none.
    """
    with frozen(discs.values()):
        return {name: gan_loss(d(target_probs[name]), is_source=True, kind=kind) for name, d in discs.items()}


def discriminator_step(
    discs: dict[str, OutputDiscriminator],
    d_optimizers: dict[str, torch.optim.Optimizer],
    source_probs: dict[str, torch.Tensor],
    target_probs: dict[str, torch.Tensor],
    kind: str,
    runtime: Runtime | None = None,
) -> Losses:
    """One update of each discriminator on detached (N, C, H, W) probabilities: source -> 1, target -> 0.

    Loss per discriminator = (loss on source + loss on target) / 2, as AdaptSegNet. Returns loss_d
    (main), loss_d_aux (when present) and d_acc: the fraction of the main discriminator's patch
    decisions that were right on this batch, both domains pooled (measured before its update); 0-dim
    tensors, as every loss of a step (see `Losses`).
    """
    metrics: Losses = {}
    runtime = runtime or Runtime()
    for name, d in discs.items():
        with runtime.autocast():
            out_s = d(source_probs[name].detach())
            out_t = d(target_probs[name].detach())
        loss = 0.5 * (gan_loss(out_s.float(), True, kind) + gan_loss(out_t.float(), False, kind))
        d_optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        runtime.average_gradients(d)
        d_optimizers[name].step()
        metrics["loss_d" if name == "main" else f"loss_d_{name}"] = loss.detach()
        if name == "main":
            correct = torch.cat(
                [
                    d_decisions_correct(out_s, True, kind).flatten(),
                    d_decisions_correct(out_t, False, kind).flatten(),
                ]
            )
            metrics["d_acc"] = correct.float().mean()
    return metrics


def adversarial_step(
    discs: dict[str, OutputDiscriminator],
    d_optimizers: dict[str, torch.optim.Optimizer],
    weights: dict[str, float],
    source_out: dict[str, torch.Tensor],
    target_out: dict[str, torch.Tensor],
    source_size: tuple[int, int],
    target_size: tuple[int, int],
    kind: str,
    target_loss: torch.Tensor | None = None,
    runtime: Runtime | None = None,
) -> Losses:
    """AdaptSegNet's two adversarial updates; call between the segmenter's backward and its step.

    G part: backpropagates sum_name weights[name] * (D_name calls the target output "source"), plus
    `target_loss` (another loss on the same target forward pass, e.g. the pseudo-label term), into the
    segmenter; the discriminators get no gradient from it. D part: one discriminator_step on the detached
    outputs. source_out / target_out: {name: (N, C, h, w) logits}; sizes: (H, W) of the input images.
    Returns loss_adv(_aux) (unweighted), loss_d(_aux), d_acc and adv_weighted (what the segmenter's
    objective gained), as 0-dim tensors (see `Losses`).
    """
    runtime = runtime or Runtime()
    target_probs = output_probabilities({n: target_out[n].float() for n in discs}, target_size)
    with runtime.autocast():
        adv = generator_adversarial_loss(discs, target_probs, kind)
    adv = {n: v.float() for n, v in adv.items()}
    weighted = sum(weights[n] * adv[n] for n in discs)
    metrics = {("loss_adv" if n == "main" else f"loss_adv_{n}"): v.detach() for n, v in adv.items()}
    # Backward before the D update: D's optimiser changes its weights in place, which autograd (rightly)
    # refuses once they were used by a graph that has not been backpropagated yet.
    (weighted if target_loss is None else weighted + target_loss).backward()
    with torch.no_grad():
        source_probs = output_probabilities({n: source_out[n].float() for n in discs}, source_size)
    d_metrics = discriminator_step(discs, d_optimizers, source_probs, target_probs, kind, runtime)
    return {**metrics, **d_metrics, "adv_weighted": weighted.detach()}


# ------------------------------------------------------------------------------------------ the step


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    source: dict[str, Any],
    pseudo: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    discs: dict[str, OutputDiscriminator] | None = None,
    d_optimizers: dict[str, torch.optim.Optimizer] | None = None,
    adapt: AdaptConfig | None = None,
    runtime: Runtime | None = None,
    pseudo_weight: float = 1.0,
) -> Losses:
    """One update of the segmenter (and of the discriminators when `discs`); returns its losses as
    0-dim tensors (see `Losses`: no host-device sync in a step; LogWindow checks them for NaN).

    Batches are dicts with "image" (N, 3, H, W) and, for source and pseudo, "label" (N, H, W) int64.
    Without discriminators `target` is unused; with them and no `target`, the pseudo batch's images are
    the target images. Each loss is backpropagated as soon as its forward pass is done, so at most one
    pass's graph is alive (AdaptSegNet's order). `runtime` puts the
    batches on its device, runs the forward passes under its autocast and averages gradients over ranks.
    """
    runtime = runtime or Runtime()
    discs = discs or {}
    optimizer.zero_grad(set_to_none=True)
    source = {"image": runtime.images(source["image"]), "label": runtime.to(source["label"])}
    with runtime.autocast():
        source_out = model(source["image"])
    loss_seg = segmentation_loss(source_out, source["label"])
    loss_seg.backward()
    metrics: Losses = {"loss_seg": loss_seg.detach()}
    total = metrics["loss_seg"]

    target_out, target_loss = None, None
    if pseudo is not None:
        labelled = bool((pseudo["label"] != IGNORE_INDEX).any())  # on the host batch: no device sync
        pseudo = {"image": runtime.images(pseudo["image"]), "label": runtime.to(pseudo["label"])}
        with runtime.autocast():
            pseudo_out = model(pseudo["image"])
        loss_pseudo = pseudo_label_loss(pseudo_out, pseudo["label"], labelled)
        metrics["loss_pseudo"] = loss_pseudo.detach()
        total = total + pseudo_weight * metrics["loss_pseudo"]
        if discs and target is None:  # the adversarial term reuses this forward pass
            target, target_out, target_loss = pseudo, pseudo_out, pseudo_weight * loss_pseudo
        else:
            (pseudo_weight * loss_pseudo).backward()

    if discs:
        if target_out is None:
            target = {"image": runtime.images(target["image"])}
            with runtime.autocast():
                target_out = model(target["image"])
        adv = adversarial_step(
            discs, d_optimizers, adversarial_weights(model, adapt), source_out, target_out,
            tuple(source["image"].shape[-2:]), tuple(target["image"].shape[-2:]), adapt.gan_loss,
            target_loss, runtime,
        )  # fmt: skip
        total = total + adv.pop("adv_weighted")
        metrics.update(adv)
    runtime.average_gradients(model)
    optimizer.step()
    metrics["loss"] = total
    return metrics


# ------------------------------------------------------------------------------------------ the loop


def _stream_seed(seed: int, stream: int) -> int:
    """A seed for one data stream (or the discriminators' init), distinct from `seed` and every other."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _loader(
    dataset: SegmentationDataset | None,
    cfg: TrainConfig,
    seed: int,
    start: int,
    runtime: Runtime,
    workers: int,
) -> Iterable[Any]:
    """This rank's share of the global batches of `dataset` from step `start`; an endless stream of
    None for an absent dataset."""
    if dataset is None:
        return itertools.repeat(None)  # zip stops with the source stream
    sampler = ResumableBatchSampler(
        len(dataset), cfg.batch_size, seed, cfg.steps, start, runtime.rank, runtime.world_size
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=False,
    )


@dataclass
class SegmenterState:
    """Everything a segmentation stage trains and checkpoints."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    discs: dict[str, OutputDiscriminator]  # {output name: discriminator}; empty without the adversarial term
    d_optimizers: dict[str, torch.optim.Optimizer]
    step: int = 0  # updates done


def build_state(
    cfg: TrainConfig, model: torch.nn.Module, adapt: AdaptConfig | None, seed: int, runtime: Runtime
) -> SegmenterState:
    """Set-up: the model on the runtime's device, its optimiser, and the discriminators `adapt` asks for."""
    model = runtime.module(model)
    weights = adversarial_weights(model, adapt)
    num_classes = getattr(model, "num_classes", NUM_CLASSES)
    discs, d_optimizers = build_discriminators(weights, num_classes, adapt, seed) if weights else ({}, {})
    discs = {name: runtime.module(d) for name, d in discs.items()}
    return SegmenterState(model, make_optimizer(model, cfg), discs, d_optimizers)


def save_checkpoint(state: SegmenterState, path: Path) -> Path:
    """Write model, optimiser, step (and discriminators with their optimisers) atomically to `path`."""
    blob: dict[str, Any] = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "step": state.step,
    }
    if state.discs:
        blob["discriminators"] = {n: d.state_dict() for n, d in state.discs.items()}
        blob["d_optimizers"] = {n: o.state_dict() for n, o in state.d_optimizers.items()}
    return atomic_torch_save(blob, path)


def load_checkpoint(state: SegmenterState, path: Path, device: torch.device) -> None:
    """Restore `state` from a checkpoint of `save_checkpoint`; it must hold the same discriminators."""
    from symda.checkpoints import CheckpointError, load_model_state, read_checkpoint

    blob = read_checkpoint(path, "training checkpoint", required=("model", "optimizer", "step"))
    if set(blob.get("discriminators", {})) != set(state.discs):
        raise CheckpointError(
            f"{path}: holds discriminators {sorted(blob.get('discriminators', {}))} but this run "
            f"has {sorted(state.discs)}; resume it with the config that wrote it"
        )
    load_model_state(state.model, blob["model"], path, "this run's model.* settings")
    state.optimizer.load_state_dict(blob["optimizer"])
    for name in state.discs:
        state.discs[name].load_state_dict(blob["discriminators"][name])
        state.d_optimizers[name].load_state_dict(blob["d_optimizers"][name])
    state.step = int(blob["step"])


Evaluator = Callable[[torch.nn.Module], dict[str, Any]]
"""evaluator(model) -> {"val_miou", "val_miou_se", "val_per_class_iou", ...}; called in eval mode, no grad."""


KEPT_CHECKPOINTS = "checkpoints"


def kept_checkpoint(out_dir: Path, step: int) -> Path:
    """Where train_segmenter(keep_checkpoints=True) keeps the network it evaluated at `step`."""
    return Path(out_dir) / KEPT_CHECKPOINTS / f"step_{step:06d}.pt"


def evaluate_segmenter(
    model: torch.nn.Module,
    val_set: SegmentationDataset,
    protocol: int,
    evaluator: Evaluator | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """val_miou (its bootstrap std val_miou_se) and val_per_class_iou on the labelled `val_set`, in
    eval mode; `evaluator` replaces that evaluation with its own (which returns those keys and more)."""
    model.eval()
    if evaluator is not None:
        with torch.no_grad():
            out = evaluator(model)
    else:
        scores = evaluate(segmenter_probabilities(model), val_set, protocol, progress=progress)
        out = {"val_miou": scores.miou, "val_miou_se": scores.miou_se, "val_per_class_iou": scores.per_class}
    model.train()
    return out


class LogWindow:
    """The steps' losses since the last log line, and the images seen in that time.

    Losses are kept as the step left them (0-dim tensors on the device); `values` turns the whole
    window into floats with one host-device transfer and raises FloatingPointError at the first
    non-finite loss, naming its step and its name. The loop calls it at every log line and before
    every checkpoint, so no checkpoint ever holds weights a non-finite loss has touched.
    """

    def __init__(self) -> None:
        self.steps: list[tuple[int, Losses]] = []
        self.images = 0
        self.t0 = time.perf_counter()

    def add(self, step: int, losses: Losses, images: int) -> None:
        self.steps.append((step, losses))
        self.images += images

    def values(self) -> list[dict[str, float]]:
        """Every step's losses as floats (one transfer); FloatingPointError at a non-finite one."""
        if not self.steps:
            return []
        flat = torch.stack([v.float() for _, losses in self.steps for v in losses.values()]).tolist()
        out, i = [], 0
        for step, losses in self.steps:
            row = dict(zip(losses, flat[i : i + len(losses)], strict=True))
            i += len(losses)
            for name, value in row.items():
                _check_finite(name, value, step)
            out.append(row)
        return out

    def means(self, adapting: bool) -> dict[str, float]:
        """The window's mean loss (every loss term when adapting; d_acc is the last batch's: D moves fast)."""
        rows = self.values()
        out = {"loss": sum(r["loss"] for r in rows) / len(rows)}
        if adapting:
            out.update(
                {k: sum(r[k] for r in rows) / len(rows) for k in rows[-1] if k not in ("loss", "d_acc")}
            )
            if "d_acc" in rows[-1]:
                out["d_acc"] = rows[-1]["d_acc"]
        return out

    def images_per_s(self) -> float:
        return self.images / max(time.perf_counter() - self.t0, 1e-9)


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
    *,
    target_set: SegmentationDataset | None = None,
    adapt: AdaptConfig | None = None,
    pseudo_set: SegmentationDataset | None = None,
    pseudo_weight: float = 1.0,
    evaluator: Evaluator | None = None,
    runtime: Runtime | None = None,
    num_workers: int = 0,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train `model` on labelled `train_set` (plus what `adapt` switches on); checkpoint to
    out_dir/checkpoint.pt; return final metrics.

    Batches are (N, 3, h, w) images with (N, h, w) int64 labels (255 = ignore); `target_set` needs images
    only, `pseudo_set` images and pseudo labels (weighted by `pseudo_weight`). Every dataset has its own
    resumable sampler (batch size cfg.batch_size), so with resume training continues from the
    checkpoint's step with the same batches (and discriminator states) it would have had uninterrupted.

    Without target_set, pseudo_set and adapt this is the supervised loop: reports hold step, loss, lr,
    images_per_s. With adaptation they add loss_seg, loss_pseudo (self-training), loss_adv and loss_d
    (unweighted main-output GAN losses; _aux variants for the aux level), d_acc; "loss" is the segmenter's
    whole objective (seg + pseudo_weight * pseudo + sum of lambda * adv) and images_per_s counts every
    image the segmenter saw. `evaluator(model)` replaces the plain val evaluation at every evaluation,
    e.g. with F_T's evaluation beside its fixed partner F_S (symda.pipeline.partner_evaluator: the
    fused prediction and the unsupervised model-selection scores that sweeps select by, in one pass).

    `runtime` (default: one CPU process) says where this runs: each of its world_size ranks trains on
    its share of every global batch of cfg.batch_size and gradients are averaged, so N ranks see the
    batches of one; only rank 0 writes the checkpoint and evaluates; every rank calls `report`.
    num_workers: DataLoader processes per dataset stream (0 = load in this process).
    keep_checkpoints: also write the network of every evaluation to out_dir/checkpoints/step_<step>.pt
    (weights only: what checkpoint selection picks from, `kept_checkpoint`).
    """
    if (target_set is not None or pseudo_set is not None) and adapt is None:
        raise ValueError("train_segmenter: target_set / pseudo_set need adapt=AdaptConfig(...) (its weights)")
    ckpt_path = Path(out_dir) / "checkpoint.pt"
    runtime = runtime or Runtime()
    state = build_state(cfg, model, adapt, seed, runtime)
    if state.discs and target_set is None and pseudo_set is None:
        raise ValueError(
            "train_segmenter: adapt.lambda_adv > 0 needs target images (target_set or pseudo_set)"
        )
    if resume and ckpt_path.is_file():
        load_checkpoint(state, ckpt_path, runtime.device)
    start = state.step
    adapting = adapt is not None or target_set is not None or pseudo_set is not None
    loaders = zip(
        _loader(train_set, cfg, seed, start, runtime, num_workers),
        _loader(pseudo_set, cfg, _stream_seed(seed, _PSEUDO_STREAM), start, runtime, num_workers),
        # The target stream is read only when the adversarial term needs it (else: not even loaded).
        _loader(
            target_set if state.discs else None,
            cfg,
            _stream_seed(seed, _TARGET_STREAM),
            start,
            runtime,
            num_workers,
        ),  # fmt: skip
        strict=False,  # an absent stream is an endless None; the source stream sets the length
    )

    def checkpoint() -> Path | None:
        return save_checkpoint(state, ckpt_path) if runtime.is_main else None

    def validate() -> dict[str, Any]:
        if not runtime.is_main or (val_set is None and evaluator is None):
            return {}
        if keep_checkpoints:  # the weights these scores belong to
            atomic_torch_save({"model": state.model.state_dict(), "step": state.step},
                              kept_checkpoint(Path(out_dir), state.step))  # fmt: skip
        return evaluate_segmenter(state.model, val_set, eval_protocol, evaluator, progress)

    state.model.train()
    window = LogWindow()
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not progress or not runtime.is_main,
               dynamic_ncols=True)  # fmt: skip
    for source, pseudo, target in loaders:
        lr = poly_lr(state.optimizer, state.step, cfg.steps, cfg.poly_power)
        for opt in state.d_optimizers.values():
            poly_lr(opt, state.step, cfg.steps, cfg.poly_power)  # the same decay as the segmenter
        state.step += 1
        step = state.step
        losses = train_step(state.model, state.optimizer, source, pseudo, target, state.discs,
                            state.d_optimizers, adapt, runtime, pseudo_weight)  # fmt: skip
        # Every image the segmenter saw; the target batch only when it is not the pseudo batch itself.
        seen = runtime.world_size * sum(len(b["image"]) for b in (source, pseudo, target) if b is not None)
        window.add(step, losses, seen)
        bar.update(1)
        # An evaluation step is a log line too, whatever log_every (the final evaluation comes after the loop).
        evaluating = bool(cfg.eval_every) and step % cfg.eval_every == 0 and step != cfg.steps
        if step % cfg.log_every == 0 or step == cfg.steps or evaluating:
            metrics: dict[str, Any] = {"step": step, **window.means(adapting), "lr": lr,
                                       "images_per_s": window.images_per_s()}  # fmt: skip
            window = LogWindow()
            bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            if evaluating:
                metrics.update(validate())
            report(metrics, checkpoint=checkpoint() if step % cfg.checkpoint_every == 0 else None)
        elif step % cfg.checkpoint_every == 0:
            window.values()  # raises on a non-finite loss before its weights are saved
            checkpoint()
    bar.close()
    final: dict[str, Any] = {"step": state.step}
    saved = checkpoint()
    final.update(validate())
    report(final, checkpoint=saved)
    return final
