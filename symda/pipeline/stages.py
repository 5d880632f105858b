"""The stages before and between the segmentation networks: data, translation, pseudo labels.

Each stage function takes the experiment config, the store and a report callback, and returns the
artifact it found or built; what an artifact's key covers is spelled out in symda.stage_keys.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from symda import stage_keys
from symda.artifacts import Artifact, ArtifactStore
from symda.config import ExperimentConfig, round_pseudo_config
from symda.data import build_dataset, check_role, ensure_synthcity, resolve_roots
from symda.data.dataset import DatasetError
from symda.distributed import Report, Runtime, run_stage
from symda.pseudo.generate import MapsMemo
from symda.records import Record, tagged_record

from .memo import Memos, memo_key, probabilities_bytes, probability_memo
from .roots import PSEUDO_FOLDERS, TRANSLATIONS, DomainRoots, with_roots
from .scoring import pair_probabilities
from .selection import network_file

log = logging.getLogger(__name__)


def prepare_data(
    cfg: ExperimentConfig, roles: tuple[str, ...], progress: bool = False
) -> dict[str, set[int]]:
    """Generate SynthCity if needed, then check each role's dataset.

    Returns, per role, the indices to skip. A damaged dataset raises DatasetError with the check's
    report unless data.skip_bad_pairs, in which case the bad pairs are skipped and counted in the log.
    """
    ensure_synthcity(cfg.data, cfg.synth, progress=progress)
    skips: dict[str, set[int]] = {}
    if not cfg.data.check:
        return {role: set() for role in roles}
    for role in roles:
        report = check_role(cfg.data, cfg.synth, role, progress=progress)
        if not report.ok and not cfg.data.skip_bad_pairs:
            raise DatasetError(
                report.summary() + "\n(set data.skip_bad_pairs=true to train on the usable pairs)"
            )
        if report.bad:
            log.warning("%s\nskipping %d of %d samples", report.summary(), len(report.bad), report.n_samples)
        skips[role] = report.bad
    return skips


def tagged(report: Report, stage: str) -> Report:
    """`report` with every record filed under `stage`, so that one log can hold several stages."""

    def tagged_report(record: Record, checkpoint: Path | None = None) -> None:
        report(tagged_record(record, stage), checkpoint=checkpoint)

    return tagged_report


def ray_train_storage(store: ArtifactStore) -> Path:
    """Where Ray Train keeps its runs of the stage loops (checkpoints it can restart a group from)."""
    return store.root / "_ray_train"


def translator_stage(
    cfg: ExperimentConfig, store: ArtifactStore, report: Report, progress: bool = False
) -> Artifact:
    """Stage 1a: the StarGAN translator (translator.pt and samples/ in the artifact)."""
    from symda.translate import train_translator

    def build(work: Path) -> None:
        skips = prepare_data(cfg, ("source",), progress)
        t = cfg.translate
        view = dataclasses.replace(
            cfg.data, source_size=t.load_size, target_size=t.load_size, crop_size=t.image_size
        )

        def loop(runtime: Runtime, report_: Report) -> None:
            source = build_dataset(view, cfg.synth, "source", skips["source"], with_labels=False)
            target = build_dataset(view, cfg.synth, "target")
            train_translator(t, source, target, work, report_, seed=cfg.seed, resume=True, progress=progress,
                             num_workers=cfg.data.num_workers, runtime=runtime)  # fmt: skip

        run_stage(loop, cfg.scale, work, tagged(report, "translate"), ray_train_storage(store))

    ensure_synthcity(cfg.data, cfg.synth, progress=progress)
    return store.get_or_build("translator", stage_keys.translator_key(cfg), None, build)


def translated_stage(
    cfg: ExperimentConfig, store: ArtifactStore, translator: Artifact, which: str, progress: bool = False
) -> Artifact:
    """Stage 1b: one dataset translated into the other style, in its own layout under artifact/data.

    which = "source" (S'), "target" (T', the target train split) or "val" (V').
    """
    from symda.translate import translate_root

    role, split, to_domain = TRANSLATIONS[which]
    source_root, target_root = resolve_roots(cfg.data, cfg.synth)
    kind, root = (cfg.data.source, source_root) if role == "source" else ("cityscapes", target_root)
    list_file = (
        cfg.data.source_list if role == "source" else (cfg.data.target_list if which == "target" else "")
    )

    def build(work: Path) -> None:
        translate_root(translator.path / "translator.pt", kind, root, split, to_domain, work / "data", cfg.translate,
                       list_file=list_file or None, batch_size=cfg.translate.apply_batch_size, progress=progress)  # fmt: skip

    config = stage_keys.translated_key(cfg, which)
    return store.get_or_build(f"translated_{which}", config, {"translator": translator.key}, build)


def source_training_config(
    cfg: ExperimentConfig, store: ArtifactStore, report: Report, progress: bool = False
) -> tuple[ExperimentConfig, dict[str, str]]:
    """The config a supervised run trains with: S' in place of S when translation is on.

    Returns (config with data.source_root pointing at S' or unchanged, {stage: artifact key} used).
    The oracle (data.source = cityscapes) already trains on the target style: never translated.
    """
    if not cfg.translate.enabled or cfg.data.source == "cityscapes":
        return cfg, {}
    translator = translator_stage(cfg, store, report, progress)
    translated = translated_stage(cfg, store, translator, "source", progress)
    data = dataclasses.replace(cfg.data, source_root=str(translated.path / "data"))
    return dataclasses.replace(cfg, data=data), {
        "translator": translator.key,
        "translated_source": translated.key,
    }


def translation_stage(
    cfg: ExperimentConfig, store: ArtifactStore, report: Report, progress: bool = False
) -> tuple[DomainRoots, dict[str, str]]:
    """Stage 1 for the full method: the translator and S', T', V' (T' and V' only for the symmetric path)."""
    source, target = resolve_roots(cfg.data, cfg.synth)
    if not cfg.translate.enabled:
        return DomainRoots(source, target, source, target, target), {}
    translator = translator_stage(cfg, store, report, progress)
    keys = {"translator": translator.key}
    roots = {}
    for which in ("source", "target", "val") if cfg.adapt.symmetric else ("source",):
        art = translated_stage(cfg, store, translator, which, progress)
        keys[f"translated_{which}"] = art.key
        roots[which] = art.path / "data"
    return DomainRoots(
        source, target, roots["source"], roots.get("target", target), roots.get("val", target)
    ), keys


def translation_check(roots: DomainRoots) -> dict[str, float | bool]:
    """How much translation changed the source images: {"change": mean |S' - S| in grey levels,
    "identity": whether that is below IDENTITY_CHANGE}, with a warning when the translator learned the
    identity (S' = S: the "translated" path trains on the source as it is). {} without translation, or
    for an S' written before symda measured it."""
    from symda.translate.apply import IDENTITY_CHANGE, translation_change

    if roots.source_translated == roots.source:
        return {}
    change = translation_change(roots.source_translated)
    if change is None:
        return {}
    identity = change < IDENTITY_CHANGE
    if identity:
        log.warning("the translator learned the identity: S' differs from S by %.2f grey levels on average "
                    "(< %s), so this run adapts without translation (the selection study saw this with a weak "
                    "translate.lambda_cls or a strong translate.lambda_rec)", change, IDENTITY_CHANGE)  # fmt: skip
    return {"change": change, "identity": identity}


def labelling_inputs(cfg: ExperimentConfig, roots: DomainRoots, f_t: Artifact, f_s: Artifact | None,
                     memos: Memos | None = None):  # fmt: skip
    """What labels the target train split: (the pair of paths' probabilities, the split T, the same
    split with its true labels for diagnostics only, a MapsMemo of the full-size maps or None), F_T
    and F_S loaded from their artifacts. Probabilities and maps are kept in `memos` for these
    networks on these images where they fit in data.cache_mb (the maps in what the probabilities
    leave), so that the next trial a process runs does not recompute them."""
    from symda.adapt.networks import load_segmenter

    target = build_dataset(cfg.data, cfg.synth, "target")
    labelled = build_dataset(cfg.data, cfg.synth, "target_labelled")
    translated = build_dataset(with_roots(cfg, target_root=roots.target_translated).data, cfg.synth, "target")
    model_t = load_segmenter(cfg.model, network_file(f_t.path))
    model_s = load_segmenter(cfg.model, network_file(f_s.path)) if f_s is not None else None
    shared_by = (
        "labelling",
        f_t.key,
        f_s.key if f_s else None,
        str(roots.target),
        str(roots.target_translated),
    )
    count = 2 if f_s is not None else 1
    memo = probability_memo(target, cfg, count, memos, shared_by)
    maps = None
    if memo is not None:
        left = cfg.data.cache_mb * 2**20 - probabilities_bytes(target, count)
        key = ("maps", *memo_key(target, cfg, shared_by))
        maps = memos.get(key, lambda: MapsMemo(left, len(target))) if memos else MapsMemo(left, len(target))
    return pair_probabilities(model_t, model_s, translated, memo), target, labelled, maps


def pseudo_stage(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    roots: DomainRoots,
    f_t: Artifact,
    f_s: Artifact | None,
    round_: int,
    progress: bool = False,
    memos: Memos | None = None,
) -> Artifact:
    """Stage 3: pseudo labels of T from F_T(t) and F_S(t'). The artifact holds `data/` (T + labels, and
    their statistics in data/pseudo_stats.json) and, for the symmetric path, `data_translated/` (T' + the
    same labels, hard links)."""
    from symda.data.cityscapes import label_path_for, list_cityscapes
    from symda.io import link_or_copy
    from symda.pseudo import generate_pseudo_labels

    cfg = round_pseudo_config(cfg, round_)  # the round's quantile (pseudo.round_quantiles)
    if cfg.pseudo.true_target_labels != "none":
        log.warning("pseudo.true_target_labels=%s: round %d trains on the TARGET TRAIN LABELS (a headroom "
                    "diagnostic, not a UDA result)", cfg.pseudo.true_target_labels, round_)  # fmt: skip

    def build(work: Path) -> None:
        labels, labels_s = work / PSEUDO_FOLDERS["T"], work / PSEUDO_FOLDERS["S"]
        pair, target, labelled, maps = labelling_inputs(cfg, roots, f_t, f_s, memos)
        with torch.no_grad():
            generate_pseudo_labels(
                pair, target, cfg.pseudo, labels, roots.target, labelled_dataset=labelled,
                batch_size=cfg.eval.batch_size, progress=progress, keep_mb=cfg.data.cache_mb, memo=maps,
            )  # fmt: skip
        if f_s is not None:
            for s in list_cityscapes(roots.target_translated, "train", with_labels=False):
                link_or_copy(s.image, labels_s / "leftImg8bit" / "train" / s.name)
                link_or_copy(
                    label_path_for(labels, "train", s.name), label_path_for(labels_s, "train", s.name)
                )

    inputs = {"F_T": f_t.key, **({"F_S": f_s.key} if f_s is not None else {})}
    return store.get_or_build("pseudo", stage_keys.pseudo_key(cfg, round_), inputs, build)
