"""Typed experiment configuration: the single home of every default.

A YAML file states only what differs from these dataclasses. Loading is strict: an unknown key, a
value of the wrong type or an impossible value raises `ConfigError` naming the dotted key, the file
and what was expected. Command-line overrides use the same dotted keys (`--set train.lr=1e-3`), and
so do sweep spaces and result columns.

The defaults describe the CPU setting on the embedded SynthCity benchmark (runs out of the box on
2 cores); `configs/gta5/` overrides them with the paper's GPU setting.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from symda.select import DEFAULT_VALIDATOR, VALIDATORS
from symda.terms import TERMS


class ConfigError(ValueError):
    """A configuration problem; the message names the key, the file and what was expected."""


@dataclass
class SynthGapConfig:
    """Strengths of SynthCity v2's domain-gap factors (symda/data/synthcity/gap.py says what each
    stands for): 0 = the target equals the source in that factor, 1 = the benchmark's full gap."""

    tone: float = 1.0  # game grading vs a photograph's: saturation, tone curve, white balance, haze
    texture: float = 1.0  # class-conditional surface textures from other families
    illumination: float = 1.0  # hard sun and cast shadows vs overcast light (which domain is sunny: seed)
    sensor: float = 1.0  # noise, blur, vignetting, JPEG, the ego car's bonnet
    layout: float = 1.0  # camera height, pitch and field of view, class frequencies, body shapes


@dataclass
class SynthCityConfig:
    """The embedded benchmark (symda.data.synthcity). Used whenever a dataset root is left empty."""

    root: str = "data/synthcity"  # where SynthCity is generated and read (its gta5/ and cityscapes/ folders)
    # v2: the factored gap (`gap`); v1: symda 0.1's benchmark, a global colour map (its published
    # numbers reproduce with `synth.preset: v1`; `gap` is unused there).
    preset: str = "v2"
    gap: SynthGapConfig = field(default_factory=SynthGapConfig)
    seed: int = 0  # the benchmark's random seed (each seed is another SynthCity)
    height: int = 128  # image height (both domains unless source_height is set)
    width: int = 256  # image width (both domains unless source_width is set)
    # The source domain's (GTA5-layout) image size when it differs; 0 = height x width. GTA5's real
    # frames are 1052x1914 and Cityscapes' 1024x2048 (bench/bench_paper_scale.py writes both).
    source_height: int = 0
    source_width: int = 0  # see source_height
    n_source: int = 1500  # source (GTA5-layout) image/label pairs
    n_target: int = 1000  # target train images (Cityscapes layout, labels for the oracle only)
    n_val: int = 250  # target val images with labels (the evaluation split)
    # Generate the benchmark when its root is missing, so a newcomer needs no extra step.
    auto_generate: bool = True


@dataclass
class DataConfig:
    """Datasets and the transforms applied to them."""

    source: str = "gta5"  # gta5 | synthia | cityscapes (cityscapes train as 'source' = the oracle)
    source_root: str = ""  # empty: SynthCity's source domain under synth.root
    source_list: str = ""  # optional split-list file (one image name per line), as the field's repos use
    target: str = "cityscapes"  # the target layout (Cityscapes only)
    target_root: str = ""  # empty: SynthCity's target domain under synth.root
    target_list: str = ""  # optional split-list file of the target train images
    val_split: str = "val"  # the split every evaluation scores (train for diagnostics; test has no labels)
    # (height, width) every image is resized to before cropping. The paper: 720x1280 source, 512x1024 target.
    source_size: tuple[int, int] = (64, 128)
    # (height, width) target images are resized to (the paper: 512x1024)
    target_size: tuple[int, int] = (64, 128)
    crop_size: tuple[int, int] | None = None  # random crop after resizing; None = whole image
    flip: bool = True  # random horizontal flips of training images
    # imagenet (torchvision mean/std, RGB) | caffe (BGR mean, for the field's COCO-initialised DeepLab weights)
    normalize: str = "imagenet"
    skip_bad_pairs: bool = False  # train on the readable pairs of a damaged dataset instead of refusing
    # Source images held out of segmentation training (a fixed subset chosen by image name, the same for
    # S and S'): the source_miou validator scores networks on them. 0 = none (source_miou is NaN).
    source_holdout: int = 0
    check: bool = True  # run the dataset check before training
    num_workers: int = 0  # DataLoader workers; 0 keeps both CPU cores for the model
    # Decode and resize a split once and keep it in memory when it fits in this many MB (per dataset
    # and process; 0 = off): SynthCity's splits take a few MB, GTA5 at 720x1280 would take 70 GB.
    # The same budget decides whether the networks' probabilities over a split are kept between
    # evaluations, and whether pseudo labelling keeps pass 1's full-size maps for pass 2.
    cache_mb: int = 1024


@dataclass
class ModelConfig:
    """The segmentation network (DeepLab V2)."""

    backbone: str = "resnet18"  # resnet101 (paper) | resnet50 | resnet34 | resnet18
    last_layer: str = "layer3"  # layer4 (paper) | layer3 (cheap CPU cut)
    output_stride: int = 8  # 8 (layer3 dilated 2, layer4 dilated 4: the paper) | 16
    aspp_dilations: tuple[int, ...] = (6, 12, 18, 24)  # the summed ASPP branches' dilations (DeepLab V2)
    aux_head: bool = False  # a second classifier on layer3 (AdaptSegNet's multi-level), its own discriminator
    # "caffe": the field's DeepLab V2 layout (stride on a stage's first 1x1 conv, ceil-mode max-pool; the
    # layout its initial weights were trained in; resnet50/101 only); "torchvision": stride on the 3x3.
    resnet_style: str = "torchvision"
    # Backbone BatchNorm: "train" (normal; SynthCity trains from scratch), "frozen" (eval mode, affine
    # frozen), "frozen_affine" (affine frozen, batch statistics in train mode: the field's code).
    bn_mode: str = "train"
    # "none", a local file, or "torch_cache" (torchvision's ImageNet file in the local torch cache; never downloaded)
    weights: str = "none"
    # train from random weights when weights is null or torch_cache has no file
    allow_random_init: bool = True


@dataclass
class TrainConfig:
    """Supervised segmentation training (source-only and oracle; the base of the adaptation loops)."""

    steps: int = 1200  # optimiser steps of supervised training and of the adaptation (round 0)
    batch_size: int = 8  # source images per step (and as many target images in adaptation)
    # SynthCity trains from scratch (no weights are downloaded), where Adam converges far faster than the
    # paper's SGD 2.5e-4 (meant for COCO-initialised weights): on SynthCity seed 0, 1200 steps, the oracle
    # reached 44.3 mIoU with Adam 1e-3 against 28.3 with SGD 0.01. configs/gta5/ sets the paper's SGD.
    optimizer: str = "adam"  # adam | sgd (paper)
    lr: float = 1e-3  # base learning rate (poly decay to 0 over the steps)
    head_lr_mult: float = 1.0  # the paper's 10x suits a pretrained backbone and a fresh head
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # L2 weight decay (the paper's SGD: 5e-4)
    poly_power: float = 0.9  # lr = base * (1 - step / steps) ** poly_power
    log_every: int = 50  # steps between log lines (loss means over the window)
    eval_every: int = 0  # 0: evaluate on target val at the end only
    checkpoint_every: int = 200  # steps between checkpoints (a stopped run resumes from the last)
    threads: int = 0  # torch CPU threads; 0 = leave torch's default


@dataclass
class TranslateConfig:
    """Stage 1: StarGAN between the source (domain 0) and target (domain 1) styles.

    The paper's sizes are g_conv_dim 64, g_repeat_num 6, d_conv_dim 64, d_repeat_num 6, batch 16
    (configs/gta5/translate.yaml); the defaults are a CPU-sized translator for SynthCity, chosen by
    measurement (source-only on S' vs S, target val mIoU):
    - 800 G steps on 32x64 crops of the 128x256 images: +18 and +12 on seeds 0 and 1, but -4 on seed 2,
      where the translator swapped sky and building colours: a patch critic that sees 1/16 of a scene
      cannot tell where a colour belongs (1600 steps did not fix it: 8.9 mIoU);
    - the whole scene at 64x128 (load_size = image_size): 34.2 on seed 2 (source-only 12.0), and the
      segmentation networks train at 64x128 anyway. Scene context matters more than texture scale.
    """

    enabled: bool = True  # off: S' = S, T' = T (the 'no translation' ablation)
    g_conv_dim: int = 16  # generator's first conv width (the paper: 64)
    g_repeat_num: int = 2  # generator's residual blocks (the paper: 6)
    d_conv_dim: int = 16  # critic's first conv width (the paper: 64)
    d_repeat_num: int = 4  # critic's stride-2 conv layers (the paper: 6)
    # Images are resized to load_size, then cropped to image_size (height, width) for training; the
    # generator is fully convolutional, so translation applies at any (the full) resolution.
    load_size: tuple[int, int] = (64, 128)
    image_size: tuple[int, int] = (64, 128)  # (height, width) of the training crops (the paper: 256x256)
    batch_size: int = 8  # images per step, half source, half target (the paper: 16)
    # Generator updates (each after n_critic critic updates). StarGAN's official code counts critic
    # iterations: its 200k iterations are 40k generator steps at n_critic 5 (configs/gta5/translate.yaml).
    generator_steps: int = 800
    n_critic: int = 5  # critic updates per generator update
    g_lr: float = 1e-4  # generator's Adam learning rate
    d_lr: float = 1e-4  # critic's Adam learning rate
    beta1: float = 0.5  # Adam beta1 of both
    beta2: float = 0.999  # Adam beta2 of both
    lambda_cls: float = 1.0  # weight of the domain-classification loss
    lambda_rec: float = 10.0  # weight of the cycle reconstruction loss
    lambda_gp: float = 10.0  # weight of WGAN-GP's gradient penalty
    # Fraction of generator_steps after which both lrs decay linearly to 0: the paper's schedule (half).
    # StarGAN's official code subtracts lr / 100k every 1000 iterations and so only reaches 0.999 of the
    # start; we follow the paper.
    decay_start: float = 0.5
    # G outputs tanh(atanh(x) + r) and starts as the identity (models/stargan.py): on SynthCity v2 the
    # published generator (false; the GTA5 configs) at 800 or 2000 CPU steps returned blurred scenes
    # with invented texture, and S' fell below source-only on seed 1 (11.4 vs 17.7; residual: 21.9).
    residual: bool = True
    log_every: int = 50  # generator steps between log lines
    sample_every: int = 200  # generator steps between sample grids (samples/ in the artifact)
    checkpoint_every: int = 200  # generator steps between checkpoints
    apply_batch_size: int = 8  # images per batch when translating whole datasets (S', T', V')


@dataclass
class PathsConfig:
    """Stages 2 and 4: which segmentation paths there are (the adaptation's loss terms are the
    sections of `adapt` after this field, one per term of symda.terms)."""

    symmetric: bool = True  # also train F_S on (S, T'); off = F_T alone, M_conf = M_prob


# Stages 2 and 4: `adapt.symmetric` and one section per adaptation loss term (symda.terms: adversarial,
# entropy, entropy_adversarial, ...), each switched on by its own weight. The segmentation optimiser,
# steps and batch size come from `train`.
AdaptConfig = dataclasses.make_dataclass(
    "AdaptConfig",
    [(name, term.Config, field(default_factory=term.Config)) for name, term in TERMS.items()],
    bases=(PathsConfig,),
)
AdaptConfig.__module__ = __name__  # pickled by name, as the other sections (Ray ships configs to workers)


@dataclass
class PseudoConfig:
    """Stage 3: which target pixels get a pseudo label, from the confidence map M_conf.

    Only what decides the labels lives here; how the method uses them is `self_train`.
    """

    fusion_weight: float = 0.5  # w in P = w * P_T + (1 - w) * P_S (DPL uses 0.5 for pseudo labels)
    # soft: 1 - JS(P_T, P_S) / ln 2 | hard: argmax agreement | none: M_conf = M_prob
    consistency: str = "soft"
    conf_weight: float = 0.5  # a in M_conf = a * M_prob + (1 - a) * M_consis
    threshold: str = "class_quantile"  # global: M_conf >= tau | class_quantile: per-class quantile, capped
    tau: float = 0.9  # global threshold on M_conf
    quantile: float = 0.5  # BDL: the per-class median...
    cap: float = 0.9  # ...capped at 0.9
    # The quantile of each round (round r uses the r-th; the last repeats); empty = `quantile` every
    # round. DPL's four rounds: [0.3, 0.25, 0.25, 0.25] (its `threshlen`), capped at 0.9.
    round_quantiles: tuple[float, ...] = ()
    bins: int = 1000  # resolution of the streaming per-class histograms of M_conf in [0, 1]
    # DIAGNOSTIC, READS THE TARGET TRAIN LABELS (never a UDA result): "kept" writes the true label at
    # exactly the pixels the policy keeps (perfect precision at the same coverage), "correct" only the
    # kept pseudo labels that are right (a perfect selector: the wrong ones ignored), "all" the true
    # label at every pixel; "none" (the method) writes the pseudo labels. The headroom of self-training.
    true_target_labels: str = "none"


@dataclass
class SelfTrainConfig:
    """Stage 4: rounds of pseudo labels (stage 3) followed by self-training of the networks on them."""

    enabled: bool = True  # off: stop after adaptation (no pseudo labels, no self-training)
    rounds: int = 1  # rounds of pseudo labels + self-training
    steps: int = 0  # steps of one round's self-training; 0 = train.steps (the adaptation's length)
    # Evaluations during a round (0: at its end only); None = train.eval_every. Sweeps need them (ASHA's
    # rungs are F_T's self-training evaluations), the adaptation before them does not.
    eval_every: int | None = None
    # Which networks a round retrains: "both" (the method: F_T and F_S), or "T" (F_T only; F_S keeps its
    # round-0 weights and still gives M_consis, fusion and the agreement validators: half the cost, the quick configs).
    paths: str = "both"  # both | T
    pseudo_weight: float = 1.0  # weight of the target pseudo-label cross-entropy beside the source one
    # Which weights a round starts from: "continue" the previous round's network, or "restart" from
    # the network's initial weights (model.weights, or the seed's random init), as BDL's self-training
    # runs do (BDL.py --init-weights with the pseudo-label folder).
    init: str = "continue"
    lr: float = 0.0  # a round's base learning rate (poly-decayed over its steps); 0 = train.lr
    # Keep the adaptation terms (adapt.*: the discriminator, entropy, ...) in a self-training round
    # (BDL and DPL keep the adversarial loss; DACS/DAFormer have none), or drop them.
    adaptation_terms: bool = True
    # Where a round's target labels come from: "online" (DACS's form: a mean teacher of the network
    # labels every target batch, the pixels chosen by the pseudo.* policy at the offline labels'
    # thresholds; symda.terms.online_labels) or "offline" (BDL, DPL, the paper: the round's starting
    # networks label the target split once). Online is the default since the self-training study
    # (docs/results/v2/self_training.md): on SynthCity v2 offline rounds gain nothing over the adapted
    # network, online ones +7.5 to +10.6 mIoU. The next two fields are the online teacher's.
    labels: str = "online"
    teacher_ema: float = 0.99  # the teacher's EMA decay (DACS 0.99), ramped in as min(1 - 1/(t+1), ema)
    mix: str = "classmix"  # classmix (DACS: half a source image's classes pasted on) | none


@dataclass
class EvalConfig:
    """Evaluation on the target val split."""

    protocol: int = 19  # 19 classes; 16 or 13 for SYNTHIA
    batch_size: int = 8  # images per evaluation batch
    fusion_weight: float = 0.5  # w in w * softmax F_T(v) + (1 - w) * softmax F_S(G(v, S)) (DPL: 0.55)


@dataclass
class SelectConfig:
    """Choosing networks without target labels (symda.select; docs/results/validators/validators.md)."""

    # The validator that picks a stage's checkpoint (keep_checkpoints) and the sweeps' default
    # --select-by: the winner of the validator study (agreement). One of symda.select.VALIDATORS.
    by: str = DEFAULT_VALIDATOR
    # Every segmenter stage keeps the network of each of its evaluations (checkpoints/step_*.pt) and
    # delivers the one `by` scores highest, instead of its last. Off by default: disk (a ResNet-101 is
    # 170 MB a checkpoint); `symda run` records which evaluation every validator would pick either way.
    keep_checkpoints: bool = False
    # A network that did not make the pseudo labels, to agree with (agreement_ref, agreement_ref_miou):
    # a finished `symda run` folder (its last round's F_T) or a segmenter checkpoint.pt; "" = none.
    # F_S made the labels with F_T, so agreeing with it is a score self-training raises by itself.
    reference: str = ""


@dataclass
class ScaleConfig:
    """How the stage loops run (symda.distributed). Never part of an artifact's key, except precision.

    num_workers 0 runs a loop in this process (the CPU default); N > 0 runs it as a Ray Train worker
    group of N (one per GPU with use_gpu, NCCL; gloo on CPU) that averages gradients every step and
    shards each global batch of train.batch_size across the workers (it must divide evenly).
    """

    num_workers: int = 0  # 0: the stage loops run in this process; N: a Ray Train worker group of N
    use_gpu: bool = False  # one GPU per worker (NCCL), else gloo on CPU
    cpus_per_worker: int = 1  # CPUs each worker (or sweep trial) holds
    gpus_per_worker: float = 1.0  # GPUs each worker holds (fractions share one)
    # fp32 | bf16 (autocast: fast on a bf16 GPU or an AVX512-BF16/AMX CPU, ~25x slower on a CPU
    # without them) | auto (bf16 where it is fast, else fp32; resolved when the config loads, so the
    # saved config and the artifact keys hold what ran). In the keys: bf16 changes the numbers.
    precision: str = "fp32"
    channels_last: bool = False  # NHWC memory format for conv nets (faster on this CPU, not on the H100)
    compile: bool = False  # torch.compile the stage loops' networks (pays back on long GPU runs only)
    max_failures: int = 0  # restarts of a crashed worker group, from the last checkpoint Ray saw
    # Adapt F_S in a process of its own while F_T adapts here, each on half the CPU cores (loops in
    # this process on the CPU only): a small-image step gains little from a second core, two at once do.
    parallel_paths: bool = False


@dataclass
class TrackConfig:
    """What a run records for the trackers researchers watch (symda.tracking)."""

    # TensorBoard scalars (every report: losses, learning rates, discriminator accuracy, val mIoU,
    # pseudo-label coverage and precision) and images (translator grids, pseudo-label panels,
    # predictions) into the run folder's tensorboard/: `tensorboard --logdir runs`.
    tensorboard: bool = True


@dataclass
class ExperimentConfig:
    """One experiment: what to train, on what, and where its outputs go."""

    name: str = "experiment"  # the run's name: its folder out_dir/name
    seed: int = 0  # seeds every stage (weights, batches, augmentation)
    out_dir: str = "runs"  # run folders (out_dir/name)
    artifacts_dir: str = "artifacts"  # the content-addressed store of stage outputs, shared by runs
    synth: SynthCityConfig = field(default_factory=SynthCityConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    self_train: SelfTrainConfig = field(default_factory=SelfTrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    track: TrackConfig = field(default_factory=TrackConfig)


def stage_train_config(cfg: ExperimentConfig, round_: int) -> TrainConfig:
    """cfg.train for round 0 (adaptation); for later rounds with self_train.steps and
    self_train.eval_every in place of steps and eval_every where they are set."""
    train = cfg.train
    if round_ and cfg.self_train.steps:
        train = dataclasses.replace(train, steps=cfg.self_train.steps)
    if round_ and cfg.self_train.eval_every is not None:
        train = dataclasses.replace(train, eval_every=cfg.self_train.eval_every)
    if round_ and cfg.self_train.lr:
        train = dataclasses.replace(train, lr=cfg.self_train.lr)
    return train


def round_quantile(cfg: PseudoConfig, round_: int) -> float:
    """The per-class quantile of round `round_` (>= 1): pseudo.round_quantiles' entry (the last repeats), else quantile."""
    if not cfg.round_quantiles:
        return cfg.quantile
    return cfg.round_quantiles[min(round_, len(cfg.round_quantiles)) - 1]


def round_pseudo_config(cfg: ExperimentConfig, round_: int) -> ExperimentConfig:
    """`cfg` with pseudo.quantile set to round `round_`'s (what labels that round)."""
    quantile = round_quantile(cfg.pseudo, round_)
    if quantile == cfg.pseudo.quantile:
        return cfg
    return dataclasses.replace(cfg, pseudo=dataclasses.replace(cfg.pseudo, quantile=quantile))


# Keys that moved, old dotted key -> new one. A user's config with an old key is refused with its new
# place and why; stored run configs and result records are read through `migrate_legacy` /
# `results.load_results` (values converted by MOVED_VALUES), so finished runs keep loading.
MOVED_KEYS: dict[str, str] = {
    "pseudo.enabled": "self_train.enabled",
    "pseudo.rounds": "self_train.rounds",
    "pseudo.self_train_steps": "self_train.steps",
    "pseudo.self_train_paths": "self_train.paths",
    "adapt.pseudo_weight": "self_train.pseudo_weight",
    "translate.steps": "translate.generator_steps",
    "model.freeze_bn": "model.bn_mode",
    # The output-space adversarial term's fields have their own section (symda/terms/adversarial.py).
    "adapt.lambda_adv": "adapt.adversarial.lambda_main",
    "adapt.lambda_adv_aux": "adapt.adversarial.lambda_aux",
    "adapt.gan_loss": "adapt.adversarial.gan_loss",
    "adapt.d_lr": "adapt.adversarial.d_lr",
    "adapt.d_beta1": "adapt.adversarial.d_beta1",
    "adapt.d_beta2": "adapt.adversarial.d_beta2",
    "adapt.d_channels": "adapt.adversarial.d_channels",
}
_MOVE_REASONS = {
    "translate.steps": "generator updates; StarGAN's official 200k iterations are critic iterations, "
    "40k generator steps at n_critic 5",
    "model.freeze_bn": "true is bn_mode frozen, false is bn_mode train; frozen_affine is the field's code",
}
_MOVE_REASONS.update(
    {old: "the output-space adversarial term has its own section" for old, new in MOVED_KEYS.items()
     if new.startswith("adapt.adversarial.")}
)  # fmt: skip
MOVED_VALUES: dict[str, Callable[[Any], Any]] = {
    # A value already in the new form (a str) stays: records may hold either.
    "model.freeze_bn": lambda v: v if isinstance(v, str) else ("frozen" if v else "train"),
}


def move_reason(old: str) -> str:
    return _MOVE_REASONS.get(old, "self-training has its own section")


def moved(key: str, value: Any) -> tuple[str, Any]:
    """(key, value) where today's symda reads them: a MOVED_KEYS key at its new place, its value
    converted by MOVED_VALUES; any other key unchanged."""
    return MOVED_KEYS.get(key, key), MOVED_VALUES.get(key, lambda v: v)(value)


def migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """A nested config mapping written by an older symda, with MOVED_KEYS at their new places (a copy)."""
    import copy

    out = copy.deepcopy(data)
    for old, new in MOVED_KEYS.items():
        *path, key = old.split(".")
        node = out
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            value = moved(old, node.pop(key))[1]
            *new_path, new_key = new.split(".")
            target = out
            for part in new_path:
                target = target.setdefault(part, {})
            target[new_key] = value
    return out


# ---------------------------------------------------------------------------------------------- checks

CONSISTENCY_KINDS = ("soft", "hard", "none")  # pseudo.consistency: JS-based, argmax agreement, off
_CHOICES: dict[str, tuple[Any, ...]] = {
    "synth.preset": ("v1", "v2"),
    "data.source": ("gta5", "synthia", "cityscapes"),
    "data.target": ("cityscapes",),
    "data.val_split": ("train", "val", "test"),
    "data.normalize": ("imagenet", "caffe"),
    "model.backbone": ("resnet18", "resnet34", "resnet50", "resnet101"),
    "model.last_layer": ("layer3", "layer4"),
    "model.output_stride": (8, 16),
    "model.resnet_style": ("torchvision", "caffe"),
    "model.bn_mode": ("train", "frozen", "frozen_affine"),
    "train.optimizer": ("sgd", "adam"),
    "eval.protocol": (19, 16, 13),
    "pseudo.consistency": CONSISTENCY_KINDS,
    "pseudo.threshold": ("global", "class_quantile"),
    "self_train.paths": ("both", "T"),
    "self_train.init": ("continue", "restart"),
    "self_train.labels": ("offline", "online"),
    "self_train.mix": ("classmix", "none"),
    "pseudo.true_target_labels": ("none", "kept", "correct", "all"),
    "scale.precision": ("fp32", "bf16", "auto"),
    "select.by": tuple(VALIDATORS),
}
_POSITIVE = (
    "synth.height", "synth.width", "synth.n_source", "synth.n_target", "synth.n_val",
    "train.steps", "train.batch_size", "train.lr", "train.log_every", "train.checkpoint_every", "eval.batch_size",
    "translate.g_conv_dim", "translate.g_repeat_num", "translate.d_conv_dim", "translate.d_repeat_num",
    "translate.batch_size", "translate.generator_steps", "translate.n_critic", "translate.g_lr", "translate.d_lr",
    "translate.log_every", "translate.sample_every", "translate.checkpoint_every", "translate.apply_batch_size",
    "pseudo.bins", "scale.cpus_per_worker",
)  # fmt: skip
_NON_NEGATIVE = (
    "train.head_lr_mult", "train.momentum", "train.weight_decay", "train.poly_power", "train.eval_every",
    "train.threads", "data.num_workers", "data.cache_mb", "synth.source_height", "synth.source_width", "translate.lambda_cls", "translate.lambda_rec", "translate.lambda_gp",
    "translate.decay_start", "self_train.pseudo_weight", "self_train.lr",
    "self_train.rounds", "self_train.steps", "self_train.eval_every", "scale.num_workers", "scale.gpus_per_worker", "scale.max_failures",
    "data.source_holdout",
)  # fmt: skip


def validate(cfg: ExperimentConfig) -> None:
    """Raise ConfigError (naming the dotted key) for values no run could use."""
    flat = flatten(cfg)
    for key, value in flat.items():  # a NaN or infinite rate or weight trains nothing, silently
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}: {flat[key]!r} is not one of {list(choices)}")
    for key in _POSITIVE:
        if not flat[key] > 0:
            raise ConfigError(f"{key}: must be > 0, got {flat[key]!r}")
    for key in _NON_NEGATIVE:
        if flat[key] is not None and not flat[key] >= 0:  # None: "as another key" (self_train.eval_every)
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]!r}")
    for key in (
        "data.source_size",
        "data.target_size",
        "data.crop_size",
        "translate.image_size",
        "translate.load_size",
    ):
        size = flat[key]
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ConfigError(f"{key}: expected [height, width] of positive ints, got {size!r}")
    for key in (
        "pseudo.fusion_weight",
        "pseudo.conf_weight",
        "pseudo.tau",
        "pseudo.quantile",
        "pseudo.cap",
        "self_train.teacher_ema",
        "eval.fusion_weight",
        "translate.decay_start",
        *(f"synth.gap.{f.name}" for f in dataclasses.fields(SynthGapConfig)),
    ):
        if not 0.0 <= flat[key] <= 1.0:
            raise ConfigError(f"{key}: must be in [0, 1], got {flat[key]!r}")
    for i, q in enumerate(cfg.pseudo.round_quantiles):
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"pseudo.round_quantiles[{i}]: must be in [0, 1], got {q!r}")
    crop = cfg.data.crop_size
    if crop is not None:
        for key in ("data.source_size", "data.target_size"):
            size = flat[key]
            if size is not None and (crop[0] > size[0] or crop[1] > size[1]):
                raise ConfigError(f"data.crop_size: {list(crop)} is larger than the resized image ({key}: "
                                  f"{list(size)}); crop at most {list(size)}, or resize larger")  # fmt: skip
    workers = max(cfg.scale.num_workers, 1)
    for key in ("train.batch_size", "translate.batch_size"):
        if flat[key] % workers:
            raise ConfigError(f"{key}: {flat[key]} does not split evenly over scale.num_workers={workers}")
    for name, term in TERMS.items():
        for key, problem in term.check(getattr(cfg.adapt, name)):
            raise ConfigError(f"adapt.{name}.{key}: {problem}")
    if cfg.self_train.labels == "online":
        # The online teacher starts as the round's network and labels with the offline policy's thresholds.
        if cfg.self_train.init == "restart":
            raise ConfigError("self_train.init: restart trains a round from the initial weights, whose mean "
                              "teacher labels nothing; online labels (self_train.labels online) need continue")  # fmt: skip
        if cfg.pseudo.true_target_labels != "none":
            raise ConfigError(f"pseudo.true_target_labels: {cfg.pseudo.true_target_labels} replaces the offline "
                              f"labels; self_train.labels online learns the teacher's (set it to offline)")  # fmt: skip
    if not cfg.model.aspp_dilations or min(cfg.model.aspp_dilations) <= 0:
        raise ConfigError(f"model.aspp_dilations: expected positive ints, got {cfg.model.aspp_dilations!r}")
    if cfg.model.resnet_style == "caffe" and cfg.model.backbone not in ("resnet50", "resnet101"):
        raise ConfigError(f"model.resnet_style: caffe moves a Bottleneck's stride to its 1x1 conv; "
                          f"model.backbone {cfg.model.backbone} has basic blocks (use resnet50 or resnet101)")  # fmt: skip


# ----------------------------------------------------------------------------------- dict <-> dataclass


def _check_value(value: Any, hint: Any, key: str) -> Any:
    """Return `value` converted to the type `hint`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check_value(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: unexpected value {value!r}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _check_value(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return _from_dict(hint, value, key)
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # a bug in this module, not in the YAML


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if dotted in MOVED_KEYS:
            raise ConfigError(f"{dotted}: moved to {MOVED_KEYS[dotted]} ({move_reason(dotted)})")
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key (valid keys here: {', '.join(sorted(names))})")
        kwargs[key] = _check_value(value, hints[key], dotted)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists, so it round-trips through YAML)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def flatten(cfg: Any) -> dict[str, Any]:
    """Dotted-key view of a config, the names used by overrides, sweeps and result columns."""
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
            else:
                out[key] = value

    walk(cfg, "")
    return out


# ------------------------------------------------------------------------------------ loading, overrides


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float: YAML 1.1 demands a dot ('1.0e-3') and would give a string."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'a.b=value' into ('a.b', value); the value is parsed as YAML (1e-3, true, [64, 128], ...)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.lr=1e-3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from err
    return key.strip(), value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a new dict; `data` is left untouched)."""
    import copy

    out = copy.deepcopy(data)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    legacy: bool = False,
) -> ExperimentConfig:
    """Build an ExperimentConfig from the defaults, an optional YAML file and dotted overrides.

    Raises ConfigError naming the file (or "--set" for overrides), the key and what was expected.
    legacy: the file and overrides are ones symda wrote (a run folder's config.yaml, a sweep's stored
    settings), possibly by an older version: moved keys are read at their new places (MOVED_KEYS)
    instead of refused.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.load(p.read_text(), Loader=YamlLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"{p}: not valid YAML ({err})") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of config sections at the top level")
        data = migrate_legacy(loaded or {}) if legacy else (loaded or {})
        try:
            _from_dict(ExperimentConfig, data)
        except ConfigError as err:
            raise ConfigError(f"{p}: {err}") from None
    if overrides:
        pairs = dict(parse_override(o) for o in overrides) if isinstance(overrides, list) else dict(overrides)
        if legacy:
            pairs = dict(moved(k, v) for k, v in pairs.items())
        data = apply_overrides(data, pairs)
        source = f"{source} with --set {' '.join(f'{k}={v}' for k, v in pairs.items())}"
    try:
        cfg = _from_dict(ExperimentConfig, data)
        validate(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    if cfg.scale.precision == "auto":
        cfg.scale.precision = fast_precision(cfg.scale.use_gpu)
    return cfg


def fast_precision(use_gpu: bool, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """ "bf16" where bf16 autocast is fast for the stage loops, else "fp32": on a GPU that supports it
    (use_gpu, seen from this process), or on a CPU with AVX512-BF16 or AMX (Linux's CPU flags). A CPU
    without them emulates bf16 matrix products: about 25x slower than fp32 (docs/performance.md)."""
    if use_gpu:
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = cpuinfo.read_text()
    except OSError:  # not Linux: no way to tell without timing, and fp32 is never the slow one
        return "fp32"
    return "bf16" if re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) else "fp32"


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the fully resolved config as YAML (atomically) and return its path."""
    from symda.io import atomic_write_text

    return atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config (or config section); equal configs give equal hashes."""
    import hashlib
    import json

    blob = json.dumps(to_dict(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


# ------------------------------------------------------------------------------------ describing keys


@dataclass(frozen=True)
class KeyDoc:
    """One config key as `symda config keys` lists it."""

    key: str  # dotted
    type: str
    default: Any
    help: str  # the comment on the field's line, or the comment lines just above it, in this module


def describe_keys() -> list[KeyDoc]:
    """Every config key with its type, default and a one-line help taken from this module's comments
    (a field's help lives next to it, so it cannot drift from a separate table)."""
    import inspect

    out: list[KeyDoc] = []

    def comments_of(cls: type) -> dict[str, str]:
        """{field: help} of a class and the classes it derives from (a term's section may extend
        another's; the dynamic AdaptConfig has no source of its own)."""
        found: dict[str, str] = {}
        for base in reversed(cls.__mro__):
            if dataclasses.is_dataclass(base):
                try:
                    found.update(own_comments(base))
                except OSError:  # no source of its own (the dynamic AdaptConfig)
                    continue
        return found

    def own_comments(cls: type) -> dict[str, str]:
        found: dict[str, str] = {}
        above: list[str] = []
        for line in inspect.getsourcelines(cls)[0]:
            text = line.strip()
            if text.startswith("#"):
                above.append(text.lstrip("#").strip())
                continue
            match = re.match(r"(\w+)\s*:\s*[^=]+=", text)
            if match and line.startswith("    ") and not line.startswith("     "):
                inline = text.split("  # ", 1)[1].strip() if "  # " in text else ""
                found[match[1]] = inline or " ".join(above)
            above = []
        return found

    def walk(obj: Any, prefix: str) -> None:
        hints = typing.get_type_hints(type(obj))
        helps = comments_of(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
                continue
            hint = hints[f.name]
            name = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            out.append(KeyDoc(f"{prefix}{f.name}", name, value, _first_sentence(helps.get(f.name, ""))))

    walk(ExperimentConfig(), "")
    return out


def _first_sentence(text: str, width: int = 110) -> str:
    cut = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return cut if len(cut) <= width else cut[: width - 3].rstrip() + "..."


def show_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML (it loads back as --config), each value that differs from the
    default followed by "# default: ..."."""
    defaults = flatten(ExperimentConfig())

    def scalar(value: Any) -> str:
        plain = list(value) if isinstance(value, tuple) else value
        return (
            yaml.safe_dump(plain, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()
        )

    lines: list[str] = []

    def emit(obj: Any, prefix: str, depth: int) -> None:
        for f in dataclasses.fields(obj):
            value, key = getattr(obj, f.name), f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                lines.append(f"{'  ' * depth}{f.name}:")
                emit(value, key + ".", depth + 1)
                continue
            line = f"{'  ' * depth}{f.name}: {scalar(value)}"
            if value != defaults[key]:
                line += f"  # default: {scalar(defaults[key])}"
            lines.append(line)

    emit(cfg, "", 0)
    return "\n".join(lines) + "\n"
