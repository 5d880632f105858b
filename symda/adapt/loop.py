"""The one segmentation training loop of stages 2 and 4: source-only, adaptation and self-training.

A plain function: a job (schedule, data streams, loss terms, evaluation) and a model in, a checkpoint
out. Its only tie to the outside is `report(record, checkpoint)` (symda.records: a StepLog per log
line, an Evaluation per evaluation): tests pass a list's append, the CLI prints, Ray passes its
report. What a step trains is its terms' business (symda.terms: source cross-entropy, pseudo-label
cross-entropy, output-space adversarial, entropy, ...); the loop runs the
streams the terms read, backpropagates each stream's losses, lets the terms update their own
networks, and steps the segmenter (symda.terms.base has the order).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from symda.checkpoints import CheckpointError, load_model_state
from symda.config import TrainConfig
from symda.data.dataset import ResumableBatchSampler, SegmentationDataset
from symda.data.labels import NUM_CLASSES
from symda.distributed import Report, Runtime
from symda.io import atomic_torch_save
from symda.models import param_groups
from symda.records import Evaluation, StepLog
from symda.terms.base import STREAMS, Losses, Term, data_streams, run_streams
from symda.training import LossWindow, progress_bar, read_checkpoint, save_checkpoint

from .step import Step, TermContext, stream_seed

# Each data stream draws its batches from its own seed, so adding a stream never changes another's
# batches; the source stream keeps the plain seed (None here), as the supervised loop always had.
STREAM_SEEDS = {"source": None, "target": 1, "pseudo": 2}

Evaluator = Callable[[torch.nn.Module, int], Evaluation]
"""evaluator(model, step) -> the network's Evaluation at `step`; called in eval mode, no grad."""


@dataclass(frozen=True)
class SegmenterJob:
    """What one segmentation stage trains: its schedule, its data and its loss terms.

    data: {stream: dataset} of the streams its terms read: "source" ((3, H, W) images with (H, W) int64
    labels, 255 = ignore), "pseudo" (target images with pseudo labels), "target" (images only).
    evaluator(model, step): the stage's evaluation (None: none), run every train.eval_every steps and
    at the end on the main rank. keep_checkpoints: also write the network of every evaluation to
    out_dir/checkpoints/step_<step>.pt (what checkpoint selection picks from, `kept_checkpoint`).
    num_workers: DataLoader processes per stream (0 = load in this process).
    """

    train: TrainConfig
    data: dict[str, SegmentationDataset]
    terms: tuple[Term, ...]
    out_dir: Path
    seed: int = 0
    evaluator: Evaluator | None = None
    resume: bool = False
    keep_checkpoints: bool = False
    num_workers: int = 0
    progress: bool = False
    streams: tuple[str, ...] = field(init=False)  # the streams the terms read, in STREAMS order

    def __post_init__(self) -> None:
        read = data_streams(self.terms)
        for term in self.terms:
            for stream in (term.stream, *term.reads, *term.batches):
                if stream not in STREAMS:
                    raise ValueError(
                        f"{type(term).__name__}: unknown stream {stream!r} (one of {list(STREAMS)})"
                    )
                if stream not in self.data:
                    raise ValueError(f"{type(term).__name__} reads the {stream!r} stream, but the job has "
                                     f"no {stream!r} data (it has {sorted(self.data)})")  # fmt: skip
        if not self.terms:
            raise ValueError("a segmenter job needs at least one loss term")
        object.__setattr__(self, "streams", tuple(s for s in STREAMS if s in read))


# ------------------------------------------------------------------------------------------ pieces


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (the paper's) or Adam over the backbone at lr and the classifier(s) at head_lr_mult * lr."""
    groups = param_groups(model, cfg.lr, cfg.head_lr_mult)
    for g in groups:
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def poly_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float) -> float:
    """Set every group to initial_lr * (1 - step/total)^power; return the first group's lr."""
    factor = (1 - step / total) ** power
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def output_levels(model: torch.nn.Module) -> tuple[str, ...]:
    """The model's outputs: ("main",), or ("main", "aux") with an auxiliary head."""
    return ("main", "aux") if getattr(model, "aux_classifier", None) is not None else ("main",)


def _merge(metrics: Losses, new: Losses, term: Term) -> None:
    for name in new:
        if name in metrics:
            raise ValueError(
                f"{type(term).__name__} reports {name!r}, which another term of the step reports"
            )
    metrics.update(new)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    terms: Iterable[Term],
    batches: dict[str, dict[str, Any]],
    runtime: Runtime,
) -> Losses:
    """One update of the segmenter (and of the terms' own networks); returns every term's metrics and
    "loss", the segmenter's whole weighted objective, as 0-dim tensors (no host-device sync in a step).

    batches: {stream: host batch} in STREAMS order. Each stream's forward pass is followed by the
    backward pass of its terms' summed losses, so at most one pass's graph is alive; a stream no
    term backpropagates through runs without a graph, and one whose outputs no term uses (only its
    batch: a term's `batches`) does not run.
    """
    terms = list(terms)
    running = run_streams(terms)
    step = Step(runtime, batches)
    optimizer.zero_grad(set_to_none=True)
    metrics: Losses = {}
    total = None
    for stream in batches:
        if stream not in running:
            continue
        own = [t for t in terms if t.stream == stream]
        with torch.set_grad_enabled(bool(own)):
            step.forward(model, stream)
        weighted = []
        for term in own:
            loss, term_metrics = term.loss(step)
            _merge(metrics, term_metrics, term)
            if loss is not None:
                weighted.append(loss)
                total = loss.detach() if total is None else total + loss.detach()
        if weighted:
            functools.reduce(operator.add, weighted).backward()
    for term in terms:
        _merge(metrics, term.update(step), term)
    runtime.average_gradients(model)
    optimizer.step()
    metrics["loss"] = total
    return metrics


def _loader(dataset: SegmentationDataset, cfg: TrainConfig, seed: int, start: int, runtime: Runtime,
            workers: int) -> torch.utils.data.DataLoader:  # fmt: skip
    """This rank's share of the global batches of `dataset` from step `start`."""
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


# ------------------------------------------------------------------------------------- checkpoints


@dataclass
class SegmenterState:
    """Everything a segmentation stage trains and checkpoints."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    terms: tuple[Term, ...]
    step: int = 0  # updates done

    def term_states(self) -> dict[str, dict[str, Any]]:
        """{term class name: its state} of the terms that have one."""
        return {type(t).__name__: s for t in self.terms if (s := t.state_dict())}


CHECKPOINT = "checkpoint.pt"
KEPT_CHECKPOINTS = "checkpoints"


def kept_checkpoint(out_dir: Path, step: int) -> Path:
    """Where a job with keep_checkpoints keeps the network it evaluated at `step`."""
    return Path(out_dir) / KEPT_CHECKPOINTS / f"step_{step:06d}.pt"


def write_checkpoint(state: SegmenterState, path: Path) -> Path:
    """Model, optimiser, step and every term's state, atomically."""
    return save_checkpoint(path, model=state.model.state_dict(), optimizer=state.optimizer.state_dict(),
                           step=state.step, terms=state.term_states())  # fmt: skip


def restore_checkpoint(state: SegmenterState, path: Path) -> None:
    """Restore `state` from `write_checkpoint`'s file; it must hold the same terms' states."""
    blob = read_checkpoint(path, "training checkpoint", required=("model", "optimizer", "step"))
    held, own = blob.get("terms", {}), state.term_states()
    if sorted(held) != sorted(own):
        raise CheckpointError(f"{path}: holds the states of terms {sorted(held)} but this run has "
                              f"{sorted(own)}; resume it with the config that wrote it")  # fmt: skip
    load_model_state(state.model, blob["model"], path, "this run's model.* settings")
    state.optimizer.load_state_dict(blob["optimizer"])
    for term in state.terms:
        if type(term).__name__ in held:
            try:
                term.load_state_dict(held[type(term).__name__], str(path))
            except ValueError as err:
                raise CheckpointError(str(err)) from None
    state.step = int(blob["step"])


# ------------------------------------------------------------------------------------------ the loop


def evaluate_model(model: torch.nn.Module, evaluator: Evaluator, step: int) -> Evaluation:
    """evaluator(model, step) in eval mode without gradients; the model is back in train mode after."""
    model.eval()
    with torch.no_grad():
        out = evaluator(model, step)
    model.train()
    return out


def train_segmenter(
    job: SegmenterJob, model: torch.nn.Module, report: Report, runtime: Runtime | None = None
) -> dict[str, Any]:
    """Train `model` as `job` says; checkpoint to job.out_dir/checkpoint.pt; return the final metrics
    ({"step"} and the final Evaluation's fields).

    Every stream has its own resumable sampler (batch size train.batch_size), so with job.resume
    training continues from the checkpoint's step with the same batches (and term states) it would
    have had uninterrupted. Reports: a StepLog every train.log_every steps (and at every evaluation)
    with "loss" (the whole weighted objective), every term's metrics (window means), lr and
    images_per_s (every image the segmenter saw); an Evaluation every train.eval_every steps; at the
    end the final Evaluation with the last checkpoint (a bare StepLog without an evaluator).

    `runtime` (default: one CPU process) says where this runs: each of its world_size ranks trains on
    its share of every global batch and gradients are averaged, so N ranks see the batches of one;
    only rank 0 writes the checkpoint and evaluates; every rank calls `report`.
    """
    cfg, out_dir = job.train, Path(job.out_dir)
    runtime = runtime or Runtime()
    model = runtime.module(model)
    ctx = TermContext(
        runtime, job.seed, getattr(model, "num_classes", NUM_CLASSES), output_levels(model), model
    )
    for term in job.terms:
        term.setup(ctx)
    state = SegmenterState(model, make_optimizer(model, cfg), job.terms)
    optimizers = [state.optimizer, *(o for t in job.terms for o in t.optimizers())]
    ckpt_path = out_dir / CHECKPOINT
    if job.resume and ckpt_path.is_file():
        restore_checkpoint(state, ckpt_path)
    start = state.step
    loaders = [
        _loader(job.data[s], cfg, job.seed if STREAM_SEEDS[s] is None else stream_seed(job.seed, STREAM_SEEDS[s]),
                start, runtime, job.num_workers)
        for s in job.streams
    ]  # fmt: skip

    def checkpoint() -> Path | None:
        return write_checkpoint(state, ckpt_path) if runtime.is_main else None

    def validate() -> Evaluation | None:
        if not runtime.is_main or job.evaluator is None:
            return None
        if job.keep_checkpoints:  # the weights these scores belong to
            atomic_torch_save({"model": state.model.state_dict(), "step": state.step},
                              kept_checkpoint(out_dir, state.step))  # fmt: skip
        return evaluate_model(state.model, job.evaluator, state.step)

    state.model.train()
    window = LossWindow()
    bar = progress_bar(cfg.steps, start, "train", job.progress and runtime.is_main)
    for batches in zip(*loaders, strict=True):
        lr = poly_lr(state.optimizer, state.step, cfg.steps, cfg.poly_power)
        for opt in optimizers[1:]:
            poly_lr(opt, state.step, cfg.steps, cfg.poly_power)  # the same decay as the segmenter
        state.step += 1
        step = state.step
        batch = dict(zip(job.streams, batches, strict=True))
        losses = train_step(state.model, state.optimizer, job.terms, batch, runtime)
        window.add(step, losses, runtime.world_size * sum(len(b["image"]) for b in batches))
        bar.update(1)
        # An evaluation step is a log line too, whatever log_every (the final evaluation comes after the loop).
        evaluating = bool(cfg.eval_every) and step % cfg.eval_every == 0 and step != cfg.steps
        if step % cfg.log_every == 0 or step == cfg.steps or evaluating:
            log = StepLog(step, {**window.means(), "lr": lr, "images_per_s": window.images_per_s()})
            window = LossWindow()
            bar.set_postfix(loss=f"{log.metrics['loss']:.3f}")
            evaluation = validate() if evaluating else None
            # The evaluation is reported (and so recorded) before this step's checkpoint is written:
            # killed between the two, the build resumes from an earlier checkpoint and evaluates this
            # step again, never from this one with its evaluation lost.
            if evaluation is not None:
                report(evaluation)
            report(log, checkpoint=checkpoint() if step % cfg.checkpoint_every == 0 else None)
        elif step % cfg.checkpoint_every == 0:
            window.values()  # raises on a non-finite loss before its weights are saved
            checkpoint()
    bar.close()
    saved = checkpoint()
    evaluation = validate()
    report(evaluation if evaluation is not None else StepLog(state.step), checkpoint=saved)
    return {"step": state.step, **(evaluation.as_dict() if evaluation is not None else {})}
