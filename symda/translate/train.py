"""Stage 1: train the StarGAN translator between the source (domain 0) and target (domain 1) styles.

A plain function like the other stage loops: config section and two image datasets in,
out_dir/translator.pt out; its only tie to the outside is `report(metrics, checkpoint=None)`.

Batches: every iteration draws batch_size // 2 source crops and batch_size - batch_size // 2 target
crops (each domain with its own `ResumableBatchSampler`) and concatenates them, so every D and G step
sees both domains and both translation directions; c' is the other domain of each image. There are
n_critic D steps per G step (StarGAN's order: the G step reuses the batch of the D step just before it);
`cfg.generator_steps` counts G steps. Both learning rates decay linearly to 0 from decay_start * steps to steps.

Resume is exact on CPU: batches are a function of the step, and the random numbers of the gradient
penalty come from a generator whose state is in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from symda.config import TranslateConfig
from symda.data.dataset import ResumableBatchSampler, SegmentationDataset
from symda.data.transforms import CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD
from symda.distributed import Report, Runtime
from symda.io import atomic_write_bytes, png_bytes
from symda.models.stargan import Discriminator, Generator, gradient_penalty
from symda.records import StepLog
from symda.training import LossWindow, progress_bar, read_checkpoint, save_checkpoint

SOURCE, TARGET = 0, 1
CHECKPOINT_NAME = "translator.pt"
METRIC_KEYS = (
    "d_loss", "d_loss_real", "d_loss_fake", "d_loss_cls", "d_loss_gp", "d_cls_acc_real", "d_cls_acc_fake",
    "g_loss", "g_loss_fake", "g_loss_cls", "g_loss_rec",
)  # fmt: skip
D_KEYS, G_KEYS = METRIC_KEYS[:7], METRIC_KEYS[7:]
N_SAMPLE_IMAGES = 4  # images per domain in the sample grids


# ---------------------------------------------------------------------------------- image value spaces


def to_tanh_space(x: Tensor, normalize_mode: str) -> Tensor:
    """Dataset-normalised (N, 3, H, W) images -> RGB in [-1, 1], the generator's (tanh) output range.

    `normalize_mode` is the datasets' `normalize` ("imagenet": (rgb/255 - mean)/std; "caffe": BGR
    0-255 minus the BGR mean).
    """
    if normalize_mode == "imagenet":
        mean = x.new_tensor(IMAGENET_MEAN)[:, None, None]
        std = x.new_tensor(IMAGENET_STD)[:, None, None]
        rgb01 = x * std + mean
    elif normalize_mode == "caffe":
        rgb01 = (x + x.new_tensor(CAFFE_BGR_MEAN)[:, None, None]).flip(1) / 255.0
    else:
        raise ValueError(f"to_tanh_space: unknown normalize mode {normalize_mode!r} (imagenet | caffe)")
    return rgb01 * 2.0 - 1.0


def from_tanh_space(x: Tensor, normalize_mode: str) -> Tensor:
    """Inverse of `to_tanh_space`: (N, 3, H, W) RGB in [-1, 1] -> normalised as a dataset's `normalize`.

    For feeding translated images straight to a segmentation network (e.g. F_S(G(v, S)) at inference).
    """
    rgb01 = (x + 1.0) / 2.0
    if normalize_mode == "imagenet":
        return (rgb01 - x.new_tensor(IMAGENET_MEAN)[:, None, None]) / x.new_tensor(IMAGENET_STD)[
            :, None, None
        ]
    if normalize_mode == "caffe":
        return rgb01.flip(1) * 255.0 - x.new_tensor(CAFFE_BGR_MEAN)[:, None, None]
    raise ValueError(f"from_tanh_space: unknown normalize mode {normalize_mode!r} (imagenet | caffe)")


def tanh_to_uint8(x: Tensor) -> np.ndarray:
    """(N, 3, H, W) RGB in [-1, 1] -> (N, H, W, 3) uint8, for writing images."""
    a = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)
    return a.permute(0, 2, 3, 1).cpu().numpy()


def uint8_to_tanh(images: np.ndarray) -> Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ------------------------------------------------------------------------------------------ pieces


def build_translator(cfg: TranslateConfig) -> tuple[Generator, Discriminator]:
    """The generator and discriminator of `cfg`, freshly initialised (PyTorch's default init, as StarGAN)."""
    return (
        Generator(cfg.g_conv_dim, cfg.g_repeat_num, num_domains=2, residual=cfg.residual),
        Discriminator(cfg.d_conv_dim, cfg.d_repeat_num, num_domains=2),
    )


def lr_factor(step: int, steps: int, decay_start: float) -> float:
    """1 until decay_start * steps G steps are done, then linear to 0 at `steps` (StarGAN's schedule)."""
    start = decay_start * steps
    if step <= start or start >= steps:
        return 1.0
    return max(0.0, (steps - step) / (steps - start))


def _domain_seed(seed: int, rank: int, domain: int) -> int:
    """Sampler seed of one domain on one rank: distinct streams, and rank 0 of any job = a 1-rank job."""
    return int(np.random.SeedSequence([seed, rank, domain]).generate_state(1)[0])


def _check_batch(x: Tensor, cfg: TranslateConfig, which: str) -> None:
    if tuple(x.shape[-2:]) != tuple(cfg.image_size):
        raise ValueError(
            f"translate: {which} crops are {tuple(x.shape[-2:])} but translate.image_size is "
            f"{tuple(cfg.image_size)}; build the datasets with crop_size=translate.image_size"
        )


def d_step(
    G: nn.Module,
    D: nn.Module,
    x: Tensor,
    c: Tensor,
    cfg: TranslateConfig,
    alpha: Tensor,
    runtime: Runtime | None = None,
) -> tuple[Tensor, Tensor]:
    """The critic loss of one batch: (d_loss, (7,) detached [d_loss, real, fake, cls, gp, acc_real, acc_fake]).

    x (N, 3, H, W) in [-1, 1], c (N,) domain ids, alpha (N, 1, 1, 1) in [0, 1] (the GP interpolation).
    Forward passes run under the runtime's autocast, except the gradient penalty's: its double backward
    wants fp32.
    """
    autocast = (runtime or Runtime()).autocast
    c_trg = 1 - c
    with autocast():
        out_src, out_cls = D(x)
        with torch.no_grad():
            x_fake = G(x, c_trg).float()
        fake_src, fake_cls = D(x_fake)
    out_src, out_cls, fake_src, fake_cls = (t.float() for t in (out_src, out_cls, fake_src, fake_cls))
    loss_real = -out_src.mean()
    loss_cls = F.cross_entropy(out_cls, c)
    loss_fake = fake_src.mean()
    x_hat = (alpha * x + (1 - alpha) * x_fake).requires_grad_(True)
    loss_gp = gradient_penalty(D(x_hat)[0], x_hat)
    loss = loss_real + loss_fake + cfg.lambda_cls * loss_cls + cfg.lambda_gp * loss_gp
    acc_real = (out_cls.argmax(1) == c).float().mean()
    acc_fake = (fake_cls.argmax(1) == c_trg).float().mean()  # translated images judged as their NEW domain
    parts = torch.stack([loss, loss_real, loss_fake, loss_cls, loss_gp, acc_real, acc_fake]).detach()
    return loss, parts


def g_step(
    G: nn.Module, D: nn.Module, x: Tensor, c: Tensor, cfg: TranslateConfig, runtime: Runtime | None = None
) -> tuple[Tensor, Tensor]:
    """The generator loss of one batch: (g_loss, (4,) detached [g_loss, fake, cls, rec])."""
    c_trg = 1 - c
    with (runtime or Runtime()).autocast():
        x_fake = G(x, c_trg)
        out_src, out_cls = D(x_fake)
        x_rec = G(x_fake, c)
    loss_fake = -out_src.float().mean()
    loss_cls = F.cross_entropy(out_cls.float(), c_trg)
    loss_rec = (x - x_rec.float()).abs().mean()
    loss = loss_fake + cfg.lambda_cls * loss_cls + cfg.lambda_rec * loss_rec
    return loss, torch.stack([loss, loss_fake, loss_cls, loss_rec]).detach()


def sample_grid(G: nn.Module, source_x: Tensor, target_x: Tensor) -> Image.Image:
    """Rows of [input | translated | reconstructed]: the source images (-> target), then the target ones.

    source_x, target_x: (n, 3, h, w) in [-1, 1]. G runs in eval mode (running stats untouched).
    """
    was_training = G.training
    G.eval()
    rows = []
    with torch.no_grad():
        for x, c in ((source_x, SOURCE), (target_x, TARGET)):
            cs = torch.full((x.shape[0],), c, dtype=torch.long, device=x.device)
            fake = G(x, 1 - cs)
            rec = G(fake, cs)
            rows += [torch.stack(triple) for triple in zip(x, fake, rec, strict=True)]
    G.train(was_training)
    tiles = tanh_to_uint8(torch.cat(rows))  # (rows * 3, h, w, 3): row-major tiles
    gap = 2  # white lines between tiles
    _, h, w, _ = tiles.shape
    n = len(rows)
    canvas = np.full((n * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        i, j = divmod(k, 3)
        canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = tile
    return Image.fromarray(canvas)


def _fixed_images(dataset: SegmentationDataset, seed: int, n: int) -> Tensor:
    """n images of `dataset` chosen by `seed`, each with the crop/flip its (index, seed) key draws."""
    rng = np.random.default_rng([seed, 7])
    indices = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
    return torch.stack([dataset[(int(i), seed)]["image"] for i in indices])


@dataclasses.dataclass
class TranslatorState:
    """Everything the translator stage trains and checkpoints."""

    G: nn.Module
    D: nn.Module
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    gp_rng: torch.Generator  # the gradient penalty's interpolation weights: resumable, unlike the global RNG
    step: int = 0  # generator updates done


def build_state(cfg: TranslateConfig, seed: int, runtime: Runtime) -> TranslatorState:
    """Set-up: G and D initialised from `seed` (the same on every rank), their Adam optimisers."""
    torch.manual_seed(seed)  # same initial weights on every rank (runtime.module also broadcasts them)
    G, D = build_translator(cfg)
    G, D = runtime.module(G).train(), runtime.module(D).train()
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    d_opt = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    gp_rng = torch.Generator().manual_seed(_domain_seed(seed, runtime.rank, 2))
    return TranslatorState(G, D, g_opt, d_opt, gp_rng)


def write_checkpoint(state: TranslatorState, cfg: TranslateConfig, path: Path) -> Path:
    """Write G, D, both optimisers, the step, the GP generator and the config atomically to `path`."""
    return save_checkpoint(path, G=state.G.state_dict(), D=state.D.state_dict(), g_opt=state.g_opt.state_dict(),
                           d_opt=state.d_opt.state_dict(), step=state.step, gp_rng=state.gp_rng.get_state(),
                           config=dataclasses.asdict(cfg))  # fmt: skip


def restore_checkpoint(state: TranslatorState, path: Path, runtime: Runtime) -> None:
    """Restore `state` from a checkpoint of `write_checkpoint` (the GP generator only on one rank: with
    several, each rank's stream differs from the one rank 0 saved)."""
    blob = read_checkpoint(
        path, "translator training checkpoint", required=("G", "D", "g_opt", "d_opt", "step")
    )
    state.G.load_state_dict(blob["G"])
    state.D.load_state_dict(blob["D"])
    state.g_opt.load_state_dict(blob["g_opt"])
    state.d_opt.load_state_dict(blob["d_opt"])
    state.step = int(blob["step"])
    if blob.get("gp_rng") is not None and runtime.world_size == 1:
        state.gp_rng.set_state(blob["gp_rng"])


def set_lr(state: TranslatorState, cfg: TranslateConfig) -> float:
    """Both optimisers at their base lr times StarGAN's linear decay for the next G step; returns the factor."""
    scale = lr_factor(state.step, cfg.generator_steps, cfg.decay_start)
    for opt, base in ((state.g_opt, cfg.g_lr), (state.d_opt, cfg.d_lr)):
        for group in opt.param_groups:
            group["lr"] = base * scale
    return scale


def critic_update(
    state: TranslatorState, x: Tensor, labels: Tensor, cfg: TranslateConfig, runtime: Runtime
) -> Tensor:
    """One D step on the (N, 3, H, W) batch in [-1, 1] with (N,) domain labels; returns d_step's (7,)
    parts, detached, where they were computed (the loop reads them once per log interval)."""
    alpha = torch.rand(x.shape[0], 1, 1, 1, generator=state.gp_rng).to(runtime.device)
    d_loss, d_parts = d_step(state.G, state.D, x, labels, cfg, alpha, runtime)
    state.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    runtime.average_gradients(state.D)
    state.d_opt.step()
    return d_parts.detach()


def generator_update(
    state: TranslatorState, x: Tensor, labels: Tensor, cfg: TranslateConfig, runtime: Runtime
) -> Tensor:
    """One G step on the batch of the D step just before it; returns g_step's (4,) parts, detached."""
    g_loss, g_parts = g_step(state.G, state.D, x, labels, cfg, runtime)
    state.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    runtime.average_gradients(state.G)
    state.g_opt.step()
    state.d_opt.zero_grad(
        set_to_none=True
    )  # the G loss also filled D's grads; they must not leak into D's step
    state.step += 1
    return g_parts.detach()


def domain_loaders(
    source: SegmentationDataset,
    target: SegmentationDataset,
    cfg: TranslateConfig,
    seed: int,
    start: int,
    runtime: Runtime,
    num_workers: int,
) -> tuple[list[torch.utils.data.DataLoader], Tensor]:
    """This rank's source and target loaders from G step `start` (n_critic batches per G step, each
    domain from its own stream), and the (N,) domain labels of their concatenated batches."""
    per_rank = cfg.batch_size // runtime.world_size
    n_src = per_rank // 2
    n_tgt = per_rank - n_src
    loaders = [
        torch.utils.data.DataLoader(
            ds,
            batch_sampler=ResumableBatchSampler(
                len(ds),
                n,
                _domain_seed(seed, runtime.rank, dom),
                cfg.n_critic * cfg.generator_steps,
                cfg.n_critic * start,
            ),
            num_workers=num_workers,
            pin_memory=runtime.device.type == "cuda",
        )
        for ds, n, dom in ((source, n_src, SOURCE), (target, n_tgt, TARGET))
    ]
    labels = torch.tensor([SOURCE] * n_src + [TARGET] * n_tgt, dtype=torch.long, device=runtime.device)
    return loaders, labels


def train_translator(
    cfg: TranslateConfig,
    source: SegmentationDataset,
    target: SegmentationDataset,
    out_dir: Path,
    report: Report,
    seed: int = 0,
    resume: bool = False,
    progress: bool = False,
    num_workers: int = 0,
    runtime: Runtime | None = None,
) -> Path:
    """Train G and D on crops of `source` (domain 0) and `target` (domain 1); return out_dir/translator.pt.

    Both datasets are training views whose items hold "image" (3, h, w) normalised as `dataset.normalize`,
    with (h, w) = cfg.image_size (build them with crop_size=cfg.image_size); labels, if any, are ignored.
    Reports every cfg.log_every G steps the window means of METRIC_KEYS plus step, lr and images_per_s.

    `runtime` (default: one CPU process) says where this runs. With several ranks each draws its own
    batch_size / world_size images (from its own streams) and gradients are averaged; only rank 0 writes
    files, and every rank calls `report` (checkpoint=None on the others), as Ray Train expects.
    """
    runtime = runtime or Runtime()
    per_rank = cfg.batch_size // runtime.world_size
    if per_rank < 2:
        raise ValueError(
            f"translate.batch_size: every rank's batch holds both domains, so batch_size / workers must be "
            f">= 2, got {cfg.batch_size} / {runtime.world_size}"
        )
    if source.normalize != target.normalize:
        raise ValueError(
            f"translate: source is normalised {source.normalize!r} but target {target.normalize!r}"
        )
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    mode = source.normalize
    main = runtime.rank == 0

    state = build_state(cfg, seed, runtime)
    if resume and ckpt_path.is_file():
        restore_checkpoint(state, ckpt_path, runtime)
    start = state.step
    loaders, labels = domain_loaders(source, target, cfg, seed, start, runtime, num_workers)
    fixed = None
    if main:
        fixed = [to_tanh_space(_fixed_images(ds, seed, N_SAMPLE_IMAGES), mode).to(runtime.device)
                 for ds in (source, target)]  # fmt: skip

    def checkpoint() -> Path | None:
        return write_checkpoint(state, cfg, ckpt_path) if main else None

    def write_samples() -> None:
        if main:
            grid = sample_grid(state.G, *fixed)
            atomic_write_bytes(out_dir / "samples" / f"step_{state.step:06d}.png", png_bytes(grid))

    window = LossWindow(unit="G step")
    lr_scale = lr_factor(start, cfg.generator_steps, cfg.decay_start)
    bar = progress_bar(cfg.generator_steps, start, "translate", progress and main)
    for it, (src_batch, tgt_batch) in enumerate(zip(*loaders, strict=True), start=cfg.n_critic * start + 1):
        if (it - 1) % cfg.n_critic == 0:  # the first D step of the next G step
            lr_scale = set_lr(state, cfg)
        _check_batch(src_batch["image"], cfg, "source")
        _check_batch(tgt_batch["image"], cfg, "target")
        x = to_tanh_space(runtime.images(torch.cat([src_batch["image"], tgt_batch["image"]])), mode)
        d_parts = critic_update(state, x, labels, cfg, runtime)
        window.add(state.step + 1, dict(zip(D_KEYS, d_parts, strict=True)), per_rank * runtime.world_size)
        if it % cfg.n_critic:
            continue

        g_parts = generator_update(state, x, labels, cfg, runtime)
        window.add(state.step + 1, dict(zip(G_KEYS, g_parts, strict=True)))
        step = state.step
        bar.update(1)
        logging = step % cfg.log_every == 0 or step == cfg.generator_steps
        checkpointing = step % cfg.checkpoint_every == 0 or step == cfg.generator_steps
        means = window.means() if logging or checkpointing else None  # checks before anything is saved
        if step % cfg.sample_every == 0 or step == cfg.generator_steps:
            write_samples()
        saved = checkpoint() if checkpointing else None
        if logging:
            log = StepLog(step, {**means, "lr": cfg.g_lr * lr_scale, "images_per_s": window.images_per_s()})
            bar.set_postfix(d=f"{log.metrics['d_loss']:.3f}", g=f"{log.metrics['g_loss']:.3f}")
            report(log, checkpoint=saved)
            window = LossWindow(unit="G step")
        elif saved is not None:
            report(StepLog(step), checkpoint=saved)
    bar.close()
    if state.step == start:  # nothing left to train (resumed a finished run): make sure the outputs exist
        write_samples()
        report(StepLog(state.step), checkpoint=checkpoint())
    return ckpt_path
