"""The artifact keys of stores built before key schema 2 (symda 0.1 to the terms refactor): the one
place that knows their layout.

Schema 1 keys were hand-built nested dicts that kept symda 0.1's layout by special cases (a field in
the key only when not at the value it had before it existed, renamed or re-expressed fields). Schema 2
(symda.stage_keys) generates every key from its field table instead. This module computes schema-1
key configs from today's config (`key_config`: the golden-key test pins them) and reads a stored
schema-1 key config back into today's dotted fields (`fields`), which `migrate_store` uses to link
the artifacts of an old store under their schema-2 keys, so that a store built before the change is
reused instead of rebuilt (`symda store migrate`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

from symda.config import ExperimentConfig, SynthGapConfig, flatten, stage_train_config, to_dict

log = logging.getLogger(__name__)

# The sections' fields that were in schema-1 keys, in their sections' order, under their schema-1 names.
_SYNTH = ("seed", "height", "width", "source_height", "source_width", "n_source", "n_target", "n_val")
_TRANSLATE = ("g_conv_dim", "g_repeat_num", "d_conv_dim", "d_repeat_num", "load_size", "image_size",
              "batch_size", "generator_steps", "n_critic", "g_lr", "d_lr", "beta1", "beta2", "lambda_cls",
              "lambda_rec", "lambda_gp", "decay_start", "residual")  # fmt: skip
_MODEL = ("backbone", "last_layer", "output_stride", "aspp_dilations", "aux_head", "resnet_style", "bn_mode",
          "weights", "allow_random_init")  # fmt: skip
_TRAIN = ("steps", "batch_size", "optimizer", "lr", "head_lr_mult", "momentum", "weight_decay", "poly_power")
_PSEUDO = ("fusion_weight", "consistency", "conf_weight", "threshold", "tau", "quantile", "cap", "bins")
# schema-1 name under "adapt" -> today's field of adapt.adversarial
_ADAPT = {"lambda_adv": "lambda_main", "lambda_adv_aux": "lambda_aux", "gan_loss": "gan_loss", "d_lr": "d_lr",
          "d_beta1": "d_beta1", "d_beta2": "d_beta2", "d_channels": "d_channels"}  # fmt: skip


def _pick(section: Any, names: tuple[str, ...]) -> dict[str, Any]:
    values = to_dict(section)
    return {name: values[name] for name in names}


def _precision(cfg: ExperimentConfig) -> dict[str, str]:
    return {"precision": cfg.scale.precision} if cfg.scale.precision != "fp32" else {}


def _holdout(cfg: ExperimentConfig) -> dict[str, int]:
    return {"source_holdout": cfg.data.source_holdout} if cfg.data.source_holdout else {}


def data_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """Schema 1's identity of the input datasets."""
    from symda.data import resolve_roots

    source, target = resolve_roots(cfg.data, cfg.synth)
    out: dict[str, Any] = {"source": cfg.data.source, "source_root": str(source.resolve()),
                           "target_root": str(target.resolve()), "source_list": cfg.data.source_list,
                           "target_list": cfg.data.target_list}  # fmt: skip
    if not cfg.data.source_root or not cfg.data.target_root:
        synth = {"preset": cfg.synth.preset, **_pick(cfg.synth, _SYNTH)}
        for name in ("source_height", "source_width"):
            if not synth[name]:
                del synth[name]
        if cfg.synth.preset == "v1":
            del synth["preset"]
        else:
            synth["gap"] = to_dict(cfg.synth.gap)
        out["synth"] = synth
    return out


def key_config(cfg: ExperimentConfig, stage: str, **context: Any) -> dict[str, Any]:
    """The schema-1 key config of `stage` ("translator", "translated" with which=, "segmenter" with
    path= and round_=, "pseudo" with round_=) for `cfg`."""
    if stage == "translator":
        translate = _pick(cfg.translate, _TRANSLATE)
        translate["steps"] = translate.pop("generator_steps")
        if not translate["residual"]:
            del translate["residual"]
        return {**_precision(cfg), **_holdout(cfg), "translate": translate, "data": data_key(cfg),
                "normalize": cfg.data.normalize, "flip": cfg.data.flip, "skip_bad_pairs": cfg.data.skip_bad_pairs,
                "seed": cfg.seed}  # fmt: skip
    if stage == "translated":
        return {"which": context["which"], "data": data_key(cfg)}
    if stage == "pseudo":
        return {"pseudo": _pick(cfg.pseudo, _PSEUDO), "round": context["round_"], "data": data_key(cfg)}
    path, round_ = context["path"], context["round_"]
    model = _pick(cfg.model, _MODEL)
    bn_mode = model.pop("bn_mode")
    model["freeze_bn"] = bn_mode == "frozen"
    if bn_mode not in ("train", "frozen"):
        model["bn_mode"] = bn_mode
    if model["resnet_style"] == "torchvision":
        del model["resnet_style"]
    train = _pick(cfg.train, _TRAIN)
    train["steps"] = stage_train_config(cfg, round_).steps
    adversarial = to_dict(cfg.adapt.adversarial)
    adapt = {old: adversarial[new] for old, new in _ADAPT.items()}
    if round_:
        adapt["pseudo_weight"] = cfg.self_train.pseudo_weight
    selection = {"select": {"by": cfg.select.by}} if cfg.select.keep_checkpoints else {}
    return {**_precision(cfg), **_holdout(cfg), **selection, "model": model, "train": train, "adapt": adapt,
            "data": data_key(cfg), "normalize": cfg.data.normalize, "sizes": [cfg.data.source_size,
            cfg.data.target_size, cfg.data.crop_size], "flip": cfg.data.flip, "seed": cfg.seed, "path": path,
            "round": round_}  # fmt: skip


# ------------------------------------------------------------------------------------ reading back


def _data_fields(data: dict[str, Any]) -> dict[str, Any]:
    out = {"data.source": data["source"], "data.source_root": data["source_root"],
           "data.target_root": data["target_root"], "data.source_list": data["source_list"],
           "data.target_list": data["target_list"]}  # fmt: skip
    synth = data.get("synth")
    if synth is None:  # SynthCity was not the data: today's keys hold its fields as None
        return {**out, **{k: None for k in flatten(ExperimentConfig()) if k.startswith("synth.")}}
    # The key held the roots SynthCity supplies (<synth.root>/gta5, <synth.root>/cityscapes), not synth.root.
    supplied = [
        Path(r) for r in (data["source_root"], data["target_root"]) if Path(r).name in ("gta5", "cityscapes")
    ]
    out["synth.root"] = str(supplied[0].parent) if supplied else None
    out["synth.preset"] = synth.get("preset", "v1")
    gap = synth.get("gap", to_dict(SynthGapConfig()))
    out.update({f"synth.gap.{k}": v for k, v in gap.items()})
    out.update({f"synth.{k}": synth.get(k, 0) for k in _SYNTH})
    return out


def fields(stage: str, config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(schema-2 stage, today's dotted fields, context) that a stored schema-1 key config of artifact
    stage `stage` ("translator", "translated_source", "segmenter_T", "pseudo", ...) stands for.

    Fields a schema-1 key left out at their old value come back at that value (residual false,
    precision fp32, no holdout, ...); the synth.* fields only where the key holds SynthCity's recipe.
    A self-training round's key held the round's length only: it comes back as self_train.steps (whose
    key value is the round's length), and migrate_store takes train.steps from the round-0 network.
    """
    out = {
        "scale.precision": config.get("precision", "fp32"),
        "data.source_holdout": config.get("source_holdout", 0),
    }
    if stage == "translator":
        translate = dict(config["translate"])
        translate["generator_steps"] = translate.pop("steps")
        translate.setdefault("residual", False)
        out.update({f"translate.{k}": v for k, v in translate.items()}, **_data_fields(config["data"]),
                   **{"data.normalize": config["normalize"], "data.flip": config["flip"],
                      "data.skip_bad_pairs": config["skip_bad_pairs"], "seed": config["seed"]})  # fmt: skip
        return "translator", out, {}
    if stage.startswith("translated_"):
        return "translated", _data_fields(config["data"]), {"which": config["which"]}
    if stage == "pseudo":
        return "pseudo", {**{f"pseudo.{k}": v for k, v in config["pseudo"].items()},
                          **_data_fields(config["data"])}, {"round": config["round"]}  # fmt: skip
    model = dict(config["model"])
    freeze_bn = model.pop("freeze_bn")
    model["bn_mode"] = model.pop("bn_mode", "frozen" if freeze_bn else "train")
    model.setdefault("resnet_style", "torchvision")
    adapt = dict(config["adapt"])
    pseudo_weight = adapt.pop("pseudo_weight", None)
    source_size, target_size, crop_size = config["sizes"]
    out.update({f"model.{k}": v for k, v in model.items()}, **{f"train.{k}": v for k, v in config["train"].items()},
               **{f"adapt.adversarial.{_ADAPT[k]}": v for k, v in adapt.items()}, **_data_fields(config["data"]),
               **{"data.normalize": config["normalize"], "data.source_size": source_size,
                  "data.target_size": target_size, "data.crop_size": crop_size, "data.flip": config["flip"],
                  "seed": config["seed"], "select.keep_checkpoints": "select" in config,
                  "select.by": config.get("select", {}).get("by")})  # fmt: skip
    if config["round"]:
        out["self_train.steps"] = out.pop("train.steps")  # the round's length; train.steps: the init's
        out["self_train.pseudo_weight"] = pseudo_weight
        return "self_trained", out, {"path": config["path"], "round": config["round"]}
    return "adapted", out, {"path": config["path"], "round": 0}


# -------------------------------------------------------------------------------------- migration


@dataclasses.dataclass
class Migration:
    """What `migrate_store` did: {(stage, old key): new key} linked or found, and what it could not read."""

    linked: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    present: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)  # -> why


def migrate_store(root: Path, dry_run: bool = False) -> Migration:
    """Link every schema-1 artifact of the store at `root` under its schema-2 key (hard links: no copy,
    the old artifact stays as it was), inputs first so that each artifact's inputs are their new keys.

    The new key is today's key of the fields the old key config stands for (`fields`), with the
    fields the old key did not know at today's defaults (the value that reproduces what the code did
    before the field existed). Artifacts already of schema 2 are left alone.
    """
    from symda.artifacts import ArtifactStore, artifact_key
    from symda.stage_keys import SCHEMA, key_config_of_fields

    store = ArtifactStore(root)
    old = {
        (r["stage"], r["key"]): r for r in store.records() if r.get("config", {}).get("schema", 1) < SCHEMA
    }
    defaults = flatten(ExperimentConfig())
    new_keys: dict[tuple[str, str], str] = {}
    out = Migration()
    pending = dict(old)
    while pending:
        progressed = False
        for (stage, key), record in list(pending.items()):
            inputs = record.get("inputs", {})
            waiting = [k for k in inputs.values() if any(k == ok for _, ok in pending) and k != key]
            if waiting:
                continue
            del pending[stage, key]
            progressed = True
            try:
                table, values, context = fields(stage, record["config"])
            except (KeyError, TypeError, ValueError) as err:
                out.skipped[stage, key] = f"not a schema-1 key config this version can read ({err!r})"
                continue
            if table == "self_trained":
                values["train.steps"] = _adaptation_steps(old, record)
            config = key_config_of_fields(table, {**defaults, **values}, context)
            new_inputs = {name: new_keys.get(_find(old, k), k) for name, k in inputs.items()}
            new_key = artifact_key(stage, config, new_inputs)
            new_keys[stage, key] = new_key
            if store.exists(stage, new_key):
                out.present[stage, key] = new_key
                continue
            if not dry_run:
                store.get_or_build(
                    stage, config, new_inputs, functools.partial(_link_tree, store.path(stage, key))
                )
            out.linked[stage, key] = new_key
        if not progressed:  # an input cycle cannot happen in a store; stop rather than spin
            for stage, key in pending:
                out.skipped[stage, key] = "its inputs could not be ordered"
            break
    return out


def _adaptation_steps(old: dict[tuple[str, str], Any], record: dict[str, Any]) -> int:
    """train.steps of a self-training round's network: its round-0 ancestor's steps (the round's own
    key held the round's length)."""
    while record["config"].get("round"):
        init = record.get("inputs", {}).get("init")
        parent = next((r for (_, k), r in old.items() if k == init), None)
        if parent is None:
            return record["config"]["train"]["steps"]  # no ancestor in the store: the round's length
        record = parent
    return record["config"]["train"]["steps"]


def _find(old: dict[tuple[str, str], Any], key: str) -> tuple[str, str]:
    return next(((s, k) for s, k in old if k == key), ("", key))


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file under `src` (but its artifact.json) at the same place under `dst`."""
    from symda.artifacts import MARKER
    from symda.io import link_or_copy

    for path in sorted(src.rglob("*")):
        if path.is_file() and path.relative_to(src) != Path(MARKER):
            link_or_copy(path, dst / path.relative_to(src))
