"""What identifies each stage's output: its artifact key config, generated from one table.

An artifact's key is the hash of (stage, key config, keys of its input artifacts) (symda.artifacts).
`FIELDS[table]` lists every config field a stage could read, each either KEY (part of the stage's key
config) or the reason it cannot change that stage's output; a section the stage never reads is left out
as a whole with `section.*` and a reason. The adaptation terms' fields come from each term's file
(symda.terms). `key_config` builds a key config from the table and nothing else: the KEY fields' values
by dotted name, the schema version and the stage's context (path, round, which dataset). Its only
rules are what a value means: data roots and synth.root resolved to absolute paths; self_train.steps
as the round's length (its 0 means train.steps); the online teacher's settings at their defaults with
offline labels (there is no teacher then); SynthCity's fields None when
both roots are given (SynthCity is not the data); select.by None without select.keep_checkpoints (it
picks nothing then); the fields of a switched-off term left out (the term does not run), so a new
term leaves every existing key as it was.

tests/test_stage_keys.py walks every field of every config dataclass and fails on one that is in no
table, and changes each field to check that exactly the KEY fields change the key config. A field
marked INPUT reaches the key through an input artifact (e.g. the segmenter's data sizes reach the
pseudo labels through F_T's key): the stage's own key config leaves it out, and the chain still rebuilds.

Key configs before SCHEMA 2 were hand-built (symda.legacy_keys); `symda store migrate` links an old
store's artifacts under today's keys.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig, SynthGapConfig, flatten, stage_train_config
from symda.terms import TERMS

SCHEMA = 2  # of the key configs; bump when the layout of key_config changes

# KEY fields added after schema 2 was written, each with the value that means what every run did
# before the field existed: a field enters a key only away from that value, so that adding a switch
# leaves every artifact already in a store under the key it had, and a later change of the field's
# default gives the runs of the new default keys of their own.
ADDED_SINCE_SCHEMA_2: dict[str, Any] = {
    "self_train.init": "continue", "self_train.lr": 0.0, "self_train.adaptation_terms": True,
    "pseudo.round_quantiles": [], "pseudo.true_target_labels": "none",
    "self_train.labels": "offline", "self_train.teacher_ema": 0.99, "self_train.mix": "classmix",
    "select.reference": "",
}  # fmt: skip

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
    # SynthCity's recipe identifies the data when a root is left empty (the roots then lie under
    # synth.root); with both roots set its fields enter the key as None.
    "synth.root": KEY,  # resolved to an absolute path
    "synth.preset": KEY,
    **{f"synth.gap.{f.name}": KEY for f in dataclasses.fields(SynthGapConfig)},
    "synth.seed": KEY,
    "synth.height": KEY,
    "synth.width": KEY,
    "synth.source_height": KEY,
    "synth.source_width": KEY,
    "synth.n_source": KEY,
    "synth.n_target": KEY,
    "synth.n_val": KEY,
    "synth.auto_generate": "whether a missing SynthCity is generated, not what it holds",
}

# Stages 2 and 4: one segmentation network F_T or F_S, adapted (round 0) or self-trained (round r >= 1).
# The adaptation terms' fields come from each term's own table (symda.terms: AdaptationTerm.FIELDS).
_SEGMENTER = {
        "name": RUN, "out_dir": RUN, "artifacts_dir": RUN, "track.*": TRACK, "seed": KEY,
        **_DATA_IDENTITY,
        "data.val_split": REPORTING,
        "data.source_size": KEY, "data.target_size": KEY, "data.crop_size": KEY, "data.flip": KEY,
        "data.normalize": KEY,
        "data.skip_bad_pairs": "the segmenter stages read the dataset whole", "data.check": CHECKS,
        "data.source_holdout": KEY,  # fewer training images
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "model.backbone": KEY, "model.last_layer": KEY, "model.output_stride": KEY, "model.aspp_dilations": KEY,
        "model.aux_head": KEY, "model.resnet_style": KEY, "model.bn_mode": KEY, "model.weights": KEY,
        "model.allow_random_init": KEY,
        "train.steps": KEY,  # a self-training round's length too when self_train.steps is 0
        "train.batch_size": KEY, "train.optimizer": KEY, "train.lr": KEY, "train.head_lr_mult": KEY,
        "train.momentum": KEY, "train.weight_decay": KEY, "train.poly_power": KEY,
        "train.log_every": CADENCE, "train.eval_every": CADENCE, "train.checkpoint_every": CADENCE,
        "train.threads": PLACEMENT,
        "translate.*": INPUT + " (the translated datasets')",
        "adapt.symmetric": "decides whether F_S exists, not how a network trains: single-path and symmetric rows share F_T",
        "self_train.enabled": SWITCH, "self_train.rounds": SWITCH + " (each round is its own artifact)",
        "self_train.paths": SWITCH + " (whether F_S is self-trained)",
        "self_train.eval_every": CADENCE,
        "eval.protocol": REPORTING, "eval.batch_size": REPORTING, "eval.fusion_weight": REPORTING,
        "scale.num_workers": PLACEMENT, "scale.use_gpu": PLACEMENT, "scale.cpus_per_worker": PLACEMENT,
        "scale.gpus_per_worker": PLACEMENT, "scale.channels_last": PLACEMENT, "scale.compile": PLACEMENT,
        "scale.max_failures": PLACEMENT, "scale.parallel_paths": PLACEMENT,
        "scale.precision": KEY,
        # Which weights the stage delivers: the last, or (keep_checkpoints) the one select.by picks.
        "select.keep_checkpoints": KEY, "select.by": KEY,  # select.by: None without keep_checkpoints
        # The reference network decides the weights only when its agreement picks the checkpoint.
        "select.reference": KEY,
    }  # fmt: skip


def _terms_fields() -> dict[str, str]:
    return {
        f"adapt.{name}.{field}": decision
        for name, term in TERMS.items()
        for field, decision in term.FIELDS.items()
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
        "data.source_holdout": KEY,  # the translator trains on the source role
        "data.num_workers": PLACEMENT, "data.cache_mb": PLACEMENT,
        "translate.enabled": SWITCH,
        "translate.g_conv_dim": KEY, "translate.g_repeat_num": KEY, "translate.d_conv_dim": KEY,
        "translate.d_repeat_num": KEY, "translate.load_size": KEY, "translate.image_size": KEY,
        "translate.batch_size": KEY, "translate.generator_steps": KEY, "translate.n_critic": KEY, "translate.g_lr": KEY,
        "translate.d_lr": KEY, "translate.beta1": KEY, "translate.beta2": KEY, "translate.lambda_cls": KEY,
        "translate.lambda_rec": KEY, "translate.lambda_gp": KEY, "translate.decay_start": KEY,
        "translate.residual": KEY,
        "translate.log_every": CADENCE, "translate.sample_every": CADENCE, "translate.checkpoint_every": CADENCE,
        "translate.apply_batch_size": "used when translating datasets, a later stage",
        "scale.num_workers": PLACEMENT, "scale.use_gpu": PLACEMENT, "scale.cpus_per_worker": PLACEMENT,
        "scale.gpus_per_worker": PLACEMENT, "scale.channels_last": PLACEMENT, "scale.compile": PLACEMENT,
        "scale.max_failures": PLACEMENT, "scale.parallel_paths": PLACEMENT,
        "scale.precision": KEY,  # bf16 changes the numbers
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
    "adapted": {
        **_SEGMENTER, **_terms_fields(),
        "pseudo.*": "a later stage (the pseudo labels of round 1)",
        "self_train.steps": "a later stage (the self-training rounds)",
        "self_train.pseudo_weight": "a later stage (the self-training rounds)",
        "self_train.init": "a later stage (the self-training rounds)",
        "self_train.lr": "a later stage (the self-training rounds)",
        "self_train.adaptation_terms": "a later stage (the self-training rounds)",
        "self_train.labels": "a later stage (the self-training rounds)",
        "self_train.teacher_ema": "a later stage (the self-training rounds)",
        "self_train.mix": "a later stage (the self-training rounds)",
    },
    "self_trained": {
        **_SEGMENTER, **_terms_fields(),
        "pseudo.*": INPUT + " (the pseudo labels')",
        "self_train.steps": KEY,  # as the round's length (its 0 is train.steps)
        "self_train.pseudo_weight": KEY,
        "self_train.init": KEY, "self_train.lr": KEY, "self_train.adaptation_terms": KEY,
        # online labels: the teacher's settings (their values enter only with self_train.labels online)
        "self_train.labels": KEY, "self_train.teacher_ema": KEY, "self_train.mix": KEY,
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
        "pseudo.round_quantiles": KEY, "pseudo.true_target_labels": KEY,
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


# ------------------------------------------------------------------------------------------- key configs


def key_fields(table: str) -> list[str]:
    """The KEY fields of a table, dotted, in the table's order."""
    return [k for k, v in FIELDS[table].items() if v == KEY]


def key_values(cfg: ExperimentConfig) -> dict[str, Any]:
    """Every field of `cfg` by dotted name with the value it enters a key with (see the module
    docstring); tuples as lists, as JSON has them."""
    from symda.data import resolve_roots

    values = {k: list(v) if isinstance(v, tuple) else v for k, v in flatten(cfg).items()}
    source, target = resolve_roots(cfg.data, cfg.synth)
    values["data.source_root"], values["data.target_root"] = str(source.resolve()), str(target.resolve())
    values["synth.root"] = str(Path(cfg.synth.root).resolve())
    values["self_train.steps"] = stage_train_config(cfg, 1).steps  # a round's length (0 means train.steps)
    if cfg.self_train.lr == cfg.train.lr:  # 0 means train.lr: one key for both spellings
        values["self_train.lr"] = 0.0
    if cfg.data.source_root and cfg.data.target_root:  # SynthCity is not the data
        values.update({k: None for k in values if k.startswith("synth.")})
    if not cfg.select.keep_checkpoints:
        values["select.by"] = None
    if values["select.by"] not in ("agreement_ref", "agreement_ref_miou"):
        values["select.reference"] = ""
    elif cfg.select.reference:  # the network it names, wherever the run or file sits
        values["select.reference"] = str(Path(cfg.select.reference).resolve())
    if cfg.self_train.labels != "online":  # no teacher: its settings are not what the round trained with
        values["self_train.teacher_ema"] = ADDED_SINCE_SCHEMA_2["self_train.teacher_ema"]
        values["self_train.mix"] = ADDED_SINCE_SCHEMA_2["self_train.mix"]
    return values


def key_config_of_fields(table: str, values: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The key config of `table` from dotted key values (`key_values`) and the stage's context."""
    off = tuple(
        f"adapt.{name}." for name, term in TERMS.items() if not values[f"adapt.{name}.{term.switch}"] > 0
    )
    fields = {k: values[k] for k in key_fields(table) if not k.startswith(off)}
    for k, before in ADDED_SINCE_SCHEMA_2.items():
        if k in fields and _as_json(fields[k]) == before:
            del fields[k]
    return {"schema": SCHEMA, "stage": table, **context, "fields": fields}


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def key_config(cfg: ExperimentConfig, table: str, **context: Any) -> dict[str, Any]:
    return key_config_of_fields(table, key_values(cfg), context)


def translator_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """Key config of the translator."""
    return key_config(cfg, "translator")


def translated_key(cfg: ExperimentConfig, which: str) -> dict[str, Any]:
    """Key config of one translated dataset: which = "source" (S'), "target" (T') or "val" (V')."""
    return key_config(cfg, "translated", which=which)


def segmenter_key(cfg: ExperimentConfig, path: str, round_: int) -> dict[str, Any]:
    """Key config of segmentation network F_<path> ("T" or "S") after round `round_` (0 = adaptation)."""
    return key_config(cfg, "self_trained" if round_ else "adapted", path=path, round=round_)


def pseudo_key(cfg: ExperimentConfig, round_: int) -> dict[str, Any]:
    """Key config of the pseudo labels of round `round_` (>= 1)."""
    return key_config(cfg, "pseudo", round=round_)
