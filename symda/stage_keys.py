"""What identifies each stage's output: its artifact key config, and its tag in logs.

An artifact's key is the hash of (stage, key config, keys of its input artifacts) (symda.artifacts).
This module is the one place that says what each stage's key config holds. `FIELDS[stage]` lists
every config field a stage could read, each either KEY (part of the stage's own key config) or the
reason it cannot change that stage's output; a section the stage never reads is left out as a whole
with `section.*` and a reason. tests/test_stage_keys.py walks every field of every config dataclass
and fails on one that is in neither list, and changes each field to check that exactly the KEY fields
change the key config. So adding a config field forces the decision, and a forgotten one cannot let a
stage silently reuse an artifact built with other settings.

A field marked INPUT reaches the key through an input artifact (e.g. the segmenter's data sizes reach
the pseudo labels through F_T's key): the stage's own key config leaves it out, and the chain still
rebuilds. The key configs keep the layout of symda 0.1, so stores built by it stay valid.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from symda.config import ExperimentConfig, SynthGapConfig, stage_train_config, to_dict

KEY = "key"

# Reasons, shared by the tables below.
RUN = "names where the run and its outputs go, not what they hold"
CADENCE = "how often the stage logs, evaluates, samples or checkpoints (resuming from a checkpoint is exact)"
PLACEMENT = (
    "where and how fast the loops run (threads, data workers, Ray workers); batches and results are the same"
)
REPORTING = "changes what is evaluated and reported about the network, not its weights"
INPUT = "reaches this stage's key through an input artifact's key"
TRACK = "what the run's trackers record (TensorBoard), not what a stage builds"
SWITCH = "decides whether a stage runs at all, not what it builds"
NO_CHOICE = "has one allowed value (validated)"
CHECKS = "the dataset check before training; a damaged dataset stops the run instead of changing it"

_DATA_IDENTITY = {
    "data.source": KEY,
    "data.source_root": KEY,  # resolved to an absolute path
    "data.source_list": KEY,
    "data.target": NO_CHOICE,
    "data.target_root": KEY,
    "data.target_list": KEY,
    # SynthCity's recipe, when a root is left empty (the roots then lie under synth.root).
    "synth.root": KEY,
    "synth.preset": KEY,  # and the gap's strengths with v2 (a v1 key leaves both out, as symda 0.1 did)
    **{f"synth.gap.{f.name}": KEY for f in dataclasses.fields(SynthGapConfig)},
    "synth.seed": KEY,
    "synth.height": KEY,
    "synth.width": KEY,
    "synth.source_height": KEY,  # both in the key only when set (keys of stores built before them)
    "synth.source_width": KEY,
    "synth.n_source": KEY,
    "synth.n_target": KEY,
    "synth.n_val": KEY,
    "synth.auto_generate": "whether a missing SynthCity is generated, not what it holds",
}

FIELDS: dict[str, dict[str, str]] = {
    # Stage 1a: the StarGAN translator.
    "translator": {
        "name": RUN, "out_dir": RUN, "artifacts_dir": RUN, "track.*": TRACK, "seed": KEY,
        **_DATA_IDENTITY,
        "data.val_split": "the translator trains on source and target train images only",
        "data.source_size": "the translator resizes to translate.load_size",
        "data.target_size": "the translator resizes to translate.load_size",
        "data.crop_size": "the translator crops to translate.image_size",
        "data.flip": KEY, "data.normalize": KEY, "data.skip_bad_pairs": KEY, "data.check": CHECKS,
        "data.source_holdout": KEY,  # the translator trains on the source role (in the key only when > 0)
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "translate.enabled": SWITCH,
        "translate.g_conv_dim": KEY, "translate.g_repeat_num": KEY, "translate.d_conv_dim": KEY,
        "translate.d_repeat_num": KEY, "translate.load_size": KEY, "translate.image_size": KEY,
        "translate.batch_size": KEY, "translate.generator_steps": KEY, "translate.n_critic": KEY, "translate.g_lr": KEY,
        "translate.d_lr": KEY, "translate.beta1": KEY, "translate.beta2": KEY, "translate.lambda_cls": KEY,
        "translate.lambda_rec": KEY, "translate.lambda_gp": KEY, "translate.decay_start": KEY,
        "translate.residual": KEY,  # in the key only when on (off: the keys of stores built before it)
        "translate.log_every": CADENCE, "translate.sample_every": CADENCE, "translate.checkpoint_every": CADENCE,
        "translate.apply_batch_size": "used when translating datasets, a later stage",
        "scale.num_workers": PLACEMENT, "scale.use_gpu": PLACEMENT, "scale.cpus_per_worker": PLACEMENT,
        "scale.gpus_per_worker": PLACEMENT, "scale.channels_last": PLACEMENT, "scale.compile": PLACEMENT,
        "scale.max_failures": PLACEMENT, "scale.parallel_paths": PLACEMENT,
        "scale.precision": KEY,  # bf16 changes the numbers (in the key only when not fp32)
        "model.*": "the translator has no segmentation network",
        "train.*": "the translator's schedule is translate.*",
        "adapt.*": "a later stage", "pseudo.*": "a later stage", "self_train.*": "a later stage",
        "eval.*": "the translator is not evaluated on target val",
        "select.*": "the translator keeps its last weights (it is not evaluated)",
    },
    # Stage 1b: one dataset translated by the translator (S', T' or V'), in its own layout.
    "translated": {
        "name": RUN, "out_dir": RUN, "artifacts_dir": RUN, "track.*": TRACK,
        "seed": "translating a dataset is deterministic",
        **_DATA_IDENTITY,
        "data.val_split": "V' is the val split (the one the method evaluates on)",
        "data.source_size": "datasets are translated at their full resolution",
        "data.target_size": "datasets are translated at their full resolution",
        "data.crop_size": "datasets are translated at their full resolution",
        "data.flip": "datasets are translated without augmentation",
        "data.normalize": "the generator reads and writes RGB images, not normalised tensors",
        "data.skip_bad_pairs": "every readable image is translated", "data.check": CHECKS,
        "data.source_holdout": "every image is translated, held out or not",
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "translate.*": INPUT + " (the translator's)",
        "scale.*": "translation runs in fp32 in this process",
        "model.*": "a later stage", "train.*": "a later stage", "adapt.*": "a later stage",
        "pseudo.*": "a later stage", "self_train.*": "a later stage", "eval.*": "a later stage",
        "select.*": "a later stage",
    },
    # Stages 2 and 4: one segmentation network F_T or F_S, adapted (round 0) or self-trained (round r).
    "segmenter": {
        "name": RUN, "out_dir": RUN, "artifacts_dir": RUN, "track.*": TRACK, "seed": KEY,
        **_DATA_IDENTITY,
        "data.val_split": REPORTING,
        "data.source_size": KEY, "data.target_size": KEY, "data.crop_size": KEY, "data.flip": KEY,
        "data.normalize": KEY,
        "data.skip_bad_pairs": "the segmenter stages read the dataset whole", "data.check": CHECKS,
        "data.source_holdout": KEY,  # fewer training images (in the key only when > 0)
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "model.backbone": KEY, "model.last_layer": KEY, "model.output_stride": KEY, "model.aspp_dilations": KEY,
        "model.aux_head": KEY, "model.resnet_style": KEY, "model.bn_mode": KEY, "model.weights": KEY,
        "model.allow_random_init": KEY,
        "train.steps": KEY,  # round 0; later rounds train self_train.steps when it is set
        "train.batch_size": KEY, "train.optimizer": KEY, "train.lr": KEY, "train.head_lr_mult": KEY,
        "train.momentum": KEY, "train.weight_decay": KEY, "train.poly_power": KEY,
        "train.log_every": CADENCE, "train.eval_every": CADENCE, "train.checkpoint_every": CADENCE,
        "train.threads": PLACEMENT,
        "translate.*": INPUT + " (the translated datasets')",
        "adapt.lambda_adv": KEY, "adapt.lambda_adv_aux": KEY, "adapt.gan_loss": KEY, "adapt.d_lr": KEY,
        "adapt.d_beta1": KEY, "adapt.d_beta2": KEY, "adapt.d_channels": KEY,
        "adapt.symmetric": "decides whether F_S exists, not how a network trains: single-path and symmetric rows share F_T",
        "pseudo.*": INPUT + " (the pseudo labels')",
        "self_train.enabled": SWITCH, "self_train.rounds": SWITCH + " (each round is its own artifact)",
        "self_train.paths": SWITCH + " (whether F_S is self-trained)",
        "self_train.steps": KEY,  # rounds >= 1 only
        "self_train.eval_every": CADENCE,
        "self_train.pseudo_weight": KEY,  # rounds >= 1 only: round 0 has no pseudo labels
        "eval.protocol": REPORTING, "eval.batch_size": REPORTING, "eval.fusion_weight": REPORTING,
        "scale.num_workers": PLACEMENT, "scale.use_gpu": PLACEMENT, "scale.cpus_per_worker": PLACEMENT,
        "scale.gpus_per_worker": PLACEMENT, "scale.channels_last": PLACEMENT, "scale.compile": PLACEMENT,
        "scale.max_failures": PLACEMENT, "scale.parallel_paths": PLACEMENT,
        "scale.precision": KEY,  # in the key only when not fp32
        # Which weights the stage delivers: the last, or (keep_checkpoints) the one select.by picks.
        "select.keep_checkpoints": KEY, "select.by": KEY,  # in the key only when keep_checkpoints is on
    },
    # Stage 3: pseudo labels of the target train split from F_T (and F_S).
    "pseudo": {
        "name": RUN, "out_dir": RUN, "artifacts_dir": RUN, "track.*": TRACK,
        "seed": "labelling is deterministic given F_T and F_S",
        **_DATA_IDENTITY,
        "data.val_split": "pseudo labels are made for the target train split",
        "data.source_size": INPUT + " (F_T's)", "data.target_size": INPUT + " (F_T's)",
        "data.crop_size": "labels are made on whole images", "data.flip": "labels are made without augmentation",
        "data.normalize": INPUT + " (F_T's)",
        "data.skip_bad_pairs": "every target image is labelled", "data.check": CHECKS,
        "data.source_holdout": INPUT + " (F_T's)",
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "pseudo.fusion_weight": KEY, "pseudo.consistency": KEY, "pseudo.conf_weight": KEY,
        "pseudo.threshold": KEY, "pseudo.tau": KEY, "pseudo.quantile": KEY, "pseudo.cap": KEY, "pseudo.bins": KEY,
        "self_train.*": "how the labels are used: a self-training sweep shares them",
        "eval.protocol": "labels are made in the 19 train classes",
        "eval.batch_size": "the inference batch: the networks run in eval mode, pixel by pixel the same",
        "eval.fusion_weight": "fusion at evaluation; labels use pseudo.fusion_weight",
        "scale.*": "labelling runs in fp32 in this process",
        "model.*": INPUT + " (F_T's and F_S's)", "train.*": INPUT + " (F_T's and F_S's)",
        "adapt.*": INPUT + " (F_T's and F_S's)", "translate.*": INPUT + " (F_S's and T''s)",
        "select.*": INPUT + " (F_T's and F_S's)",
    },
}  # fmt: skip


def key_fields(stage: str, section: str) -> list[str]:
    """The fields of one config section that are KEY for `stage`, in the section's order."""
    cfg = ExperimentConfig()
    names = to_dict(getattr(cfg, section)).keys()
    return [name for name in names if FIELDS[stage].get(f"{section}.{name}") == KEY]


def _section(cfg: ExperimentConfig, stage: str, section: str) -> dict[str, Any]:
    values = to_dict(getattr(cfg, section))
    return {name: values[name] for name in key_fields(stage, section)}


def _precision(cfg: ExperimentConfig) -> dict[str, str]:
    """{"precision": ...} when not fp32: fp32 keys stay those of stores built before the field existed."""
    return {"precision": cfg.scale.precision} if cfg.scale.precision != "fp32" else {}


def _holdout(cfg: ExperimentConfig) -> dict[str, int]:
    """{"source_holdout": n} when images are held out: keys without a holdout stay those of older stores."""
    return {"source_holdout": cfg.data.source_holdout} if cfg.data.source_holdout else {}


# ------------------------------------------------------------------------------------------- key configs


def data_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """What identifies the input datasets: resolved roots, lists, and SynthCity's recipe when it is used."""
    from symda.data import resolve_roots

    source, target = resolve_roots(cfg.data, cfg.synth)
    out: dict[str, Any] = {
        "source": cfg.data.source,
        "source_root": str(source.resolve()),
        "target_root": str(target.resolve()),
        "source_list": cfg.data.source_list,
        "target_list": cfg.data.target_list,
    }
    if not cfg.data.source_root or not cfg.data.target_root:
        synth = _section(cfg, "translator", "synth")
        del synth["root"]  # already in the resolved roots
        for name in ("source_height", "source_width"):
            if not synth[name]:
                del synth[name]
        if cfg.synth.preset == "v1":
            del synth["preset"]  # symda 0.1's keys: v1 stores stay valid
        else:
            synth["gap"] = to_dict(cfg.synth.gap)
        out["synth"] = synth
    return out


def translator_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """Key config of the translator."""
    translate = _section(cfg, "translator", "translate")
    translate["steps"] = translate.pop("generator_steps")  # its name in stores built before the rename
    if not translate["residual"]:
        del translate["residual"]  # the published generator: keys of stores built before the option
    return {**_precision(cfg), **_holdout(cfg), "translate": translate, "data": data_key(cfg),
            "normalize": cfg.data.normalize, "flip": cfg.data.flip, "skip_bad_pairs": cfg.data.skip_bad_pairs,
            "seed": cfg.seed}  # fmt: skip


def translated_key(cfg: ExperimentConfig, which: str) -> dict[str, Any]:
    """Key config of one translated dataset: which = "source" (S'), "target" (T') or "val" (V')."""
    return {"which": which, "data": data_key(cfg)}


def _model_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """The segmenter's model section in the layout of older stores: bn_mode "train" / "frozen" as
    freeze_bn false / true, bn_mode only otherwise (frozen_affine) and resnet_style only when not
    "torchvision"."""
    model = _section(cfg, "segmenter", "model")
    bn_mode = model.pop("bn_mode")
    model["freeze_bn"] = bn_mode == "frozen"
    if bn_mode not in ("train", "frozen"):  # frozen_affine: what freeze_bn cannot say
        model["bn_mode"] = bn_mode
    if model["resnet_style"] == "torchvision":
        del model["resnet_style"]
    return model


def segmenter_key(cfg: ExperimentConfig, path: str, round_: int) -> dict[str, Any]:
    """Key config of segmentation network F_<path> ("T" or "S") after round `round_` (0 = adaptation)."""
    train = _section(cfg, "segmenter", "train")
    train["steps"] = stage_train_config(cfg, round_).steps
    adapt = _section(cfg, "segmenter", "adapt")
    if round_:
        adapt["pseudo_weight"] = cfg.self_train.pseudo_weight  # under adapt: symda 0.1's layout
    selection = {"select": {"by": cfg.select.by}} if cfg.select.keep_checkpoints else {}
    return {**_precision(cfg), **_holdout(cfg), **selection, "model": _model_key(cfg), "train": train, "adapt": adapt,
            "data": data_key(cfg), "normalize": cfg.data.normalize, "sizes": [cfg.data.source_size,
            cfg.data.target_size, cfg.data.crop_size], "flip": cfg.data.flip, "seed": cfg.seed, "path": path, "round": round_}  # fmt: skip


def pseudo_key(cfg: ExperimentConfig, round_: int) -> dict[str, Any]:
    """Key config of the pseudo labels of round `round_` (>= 1)."""
    return {"pseudo": _section(cfg, "pseudo", "pseudo"), "round": round_, "data": data_key(cfg)}


# ------------------------------------------------------------------------------------------ stage tags

_TAG = re.compile(r"adapt_([TS])_r(\d+)")


def network_tag(path: str, round_: int) -> str:
    """The log tag ("stage" of every report) of network F_<path>'s stage in round `round_`."""
    return f"adapt_{path}_r{round_}"


def parse_network_tag(tag: str) -> tuple[str, int] | None:
    """(path, round) of a network_tag, or None for any other stage's tag."""
    match = _TAG.fullmatch(tag)
    return (match[1], int(match[2])) if match else None
