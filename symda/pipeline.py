"""Chains the stages through the artifact store; a finished stage is never recomputed.

    data (SynthCity on first use) -> translator -> translated datasets (S', T', V') -> segmentation

Each stage function takes the experiment config, the store and a report callback, and returns the
artifact it found or built. What an artifact's key covers is spelled out in symda.stage_keys, field
by field, so it is plain which config change rebuilds what.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from symda import stage_keys
from symda.adapt.loop import Evaluator, train_segmenter
from symda.artifacts import Artifact, ArtifactStore, artifact_key
from symda.config import ExperimentConfig, save_config, stage_train_config
from symda.data import build_dataset, check_role, ensure_synthcity, resolve_roots
from symda.data.dataset import DatasetError, SegmentationDataset
from symda.data.labels import NUM_CLASSES
from symda.distributed import BackgroundCall, Report, Runtime, cpu_count, run_stage, torch_threads
from symda.io import atomic_write_text, jsonable, write_json
from symda.models.build import build_segmenter, load_segmenter
from symda.pseudo.generate import FIGURE_FILE, STATS_FILE, MapsMemo
from symda.select import VALIDATORS
from symda.tracking import TensorBoardLog, sample_steps, tensorboard_log

log = logging.getLogger(__name__)

# Translation directions: which dataset is translated into which style (0 = source, 1 = target).
TRANSLATIONS: dict[str, tuple[str, str | None, int]] = {
    "source": ("source", None, 1),  # S' = G(S, target): source content, target style, source labels
    "target": ("target", "train", 0),  # T' = G(T, source)
    "val": ("target", "val", 0),  # V' = G(V, source), for fused inference
}


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


# ------------------------------------------------------------------------------------------- stages


def tagged(report: Report, stage: str) -> Report:
    """`report` with {"stage": stage} added to every record, so one log can hold several stages."""

    def tagged_report(metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        report({"stage": stage, **metrics}, checkpoint=checkpoint)

    return tagged_report


EVALUATIONS = "evaluations.jsonl"  # a segmenter's val evaluations during training, in its artifact


def recording_evaluations(report: Report, path: Path) -> Report:
    """`report` that also keeps every evaluation (a record with "val_miou") in `path`, one JSON line
    each. A record at step s replaces those at steps >= s: a build resumed from an earlier checkpoint
    evaluates those steps again."""

    def recording_report(metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        if "val_miou" in metrics:
            kept = [r for r in read_evaluations(path) if r.get("step", -1) < metrics.get("step", -1)]
            new = {k: v for k, v in metrics.items() if k != "stage"}  # the tag is added on replay
            atomic_write_text(path, "".join(json.dumps(r, default=jsonable) + "\n" for r in [*kept, new]))
        report(metrics, checkpoint=checkpoint)

    return recording_report


def read_evaluations(path: Path) -> list[dict[str, Any]]:
    """The evaluations `recording_evaluations` kept in `path` ([] when there is none)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replay_evaluations(path: Path, report: Report) -> None:
    """Report the evaluations kept in `path` again, marked "replayed": a stage taken from the store
    (or resumed) then shows the same evaluation history as when it was built, so a sweep's scheduler
    (ASHA) sees the same rungs in a cached rerun as in the first run."""
    for record in read_evaluations(path):
        report({**record, "replayed": True})


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


def ray_train_storage(store: ArtifactStore) -> Path:
    """Where Ray Train keeps its runs of the stage loops (checkpoints it can restart a group from)."""
    return store.root / "_ray_train"


def start_run(cfg: ExperimentConfig, out_dir: Path) -> ArtifactStore:
    """Create the run folder, write the resolved config there, set threads; return the artifact store."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    return ArtifactStore(cfg.artifacts_dir)


def run_supervised(
    cfg: ExperimentConfig,
    out_dir: Path,
    report: Report,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Source-only training on S (or on S' with translate.enabled), or the oracle (data.source = cityscapes).

    Writes config.yaml, checkpoint.pt and metrics.json into out_dir and returns the metrics, which
    include the artifact keys it used and the seconds each stage took; every report also goes to
    TensorBoard (out_dir/tensorboard, track.tensorboard).
    """
    out_dir = Path(out_dir)
    store = start_run(cfg, out_dir)
    with tensorboard_log(out_dir, cfg.track.tensorboard) as tb:
        report = tb.wrap(report)
        t0 = time.perf_counter()
        train_cfg, artifacts = source_training_config(cfg, store, report, progress)
        seconds = {"translate": time.perf_counter() - t0} if artifacts else {}
        skips = prepare_data(train_cfg, ("source", "val"), progress)
        train_set = build_dataset(train_cfg.data, cfg.synth, "source", skips["source"])
        val_set = build_dataset(train_cfg.data, cfg.synth, "val", skips["val"])
        torch.manual_seed(cfg.seed)  # the network's initialisation is part of the seed's promise
        model = build_segmenter(cfg.model)
        t0 = time.perf_counter()
        metrics = train_segmenter(
            cfg.train, model, train_set, val_set, out_dir, tagged(report, "train"), cfg.seed, resume,
            cfg.eval.protocol, progress,
        )  # fmt: skip
        seconds["train"] = time.perf_counter() - t0
    metrics.update(artifacts=artifacts, seconds=seconds)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


# ------------------------------------------------------------------------------ the full method (run)


@dataclasses.dataclass(frozen=True)
class DomainRoots:
    """Dataset roots of one experiment: originals, and their translations (= originals when translation is off)."""

    source: Path  # S (labelled, GTA5/SYNTHIA layout)
    target: Path  # T and V (Cityscapes layout)
    source_translated: Path  # S' = G(S, target)
    target_translated: Path  # T' = G(T, source) (train split)
    val_translated: Path  # V' = G(V, source) (val split, labels copied)


def with_roots(
    cfg: ExperimentConfig, source_root: Path | None = None, target_root: Path | None = None
) -> ExperimentConfig:
    """A copy of cfg whose data roots point elsewhere (translated or pseudo-labelled data)."""
    data = cfg.data
    if source_root is not None:
        data = dataclasses.replace(data, source_root=str(source_root))
    if target_root is not None:
        data = dataclasses.replace(data, target_root=str(target_root))
    return dataclasses.replace(cfg, data=data)


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


# Where a pseudo-label artifact holds each path's images with the labels: T's style, and T' for F_S.
PSEUDO_FOLDERS = {"T": "data", "S": "data_translated"}


@dataclasses.dataclass(frozen=True)
class NetworkPath:
    """One of the method's two segmentation paths: the data its network trains and is evaluated on.

    "T": F_T, labelled S' and unlabelled T, evaluated on V; "S": F_S, labelled S and unlabelled T',
    evaluated on V'. Built by `network_paths`, the one place that pairs a path with its datasets.
    """

    name: str  # "T" | "S"
    source_root: Path  # labelled images in this path's style (S' or S)
    target_root: Path  # unlabelled target images in this path's style (T or T')
    val_root: Path  # target val images in this path's style (V or V')
    inputs: dict[str, str]  # artifact keys of those datasets (translator, translations): only its own
    pseudo_folder: str  # where a pseudo-label artifact holds this path's images + labels

    def tag(self, round_: int) -> str:
        return stage_keys.network_tag(self.name, round_)


def network_paths(roots: DomainRoots, keys: dict[str, str]) -> tuple[NetworkPath, NetworkPath]:
    """(F_T's path, F_S's path) over translation_stage's roots and artifact keys.

    Each path's inputs are only the data it trains on, so F_T of a single-path row and of a symmetric
    row are one artifact.
    """

    def pick(*names: str) -> dict[str, str]:
        return {k: v for k, v in keys.items() if k in names}

    return (
        NetworkPath("T", roots.source_translated, roots.target, roots.target,
                    pick("translator", "translated_source"), PSEUDO_FOLDERS["T"]),
        NetworkPath("S", roots.source, roots.target_translated, roots.val_translated,
                    pick("translator", "translated_target", "translated_val"), PSEUDO_FOLDERS["S"]),
    )  # fmt: skip


def segmenter_stage(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    net: NetworkPath,
    round_: int,
    report: Report,
    pseudo: Artifact | None = None,
    init: Artifact | None = None,
    progress: bool = False,
    evaluator: Evaluator | None = None,
) -> Artifact:
    """Stages 2 and 4: the segmentation network of path `net` after round `round_`.

    Round 0 is adversarial adaptation (adversarial term off when adapt.lambda_adv = 0); a later
    round self-trains on the `pseudo` artifact's images + labels in this path's style, with the
    adversarial term kept, starting from the previous round's network `init`.
    Every evaluation scores the network with `evaluator` (default: `stage_evaluator` of the path, no
    partner): val mIoU and every validator. With select.keep_checkpoints the loop keeps each evaluated
    network and the artifact delivers the one select.by picks (`select_checkpoint`, `network_file`).
    """
    if (pseudo is None) != (round_ == 0) or (init is None) != (round_ == 0):
        raise ValueError(
            f"segmenter_stage: round {round_} needs pseudo labels and an init network from round >= 1 only"
        )

    evaluator = evaluator or stage_evaluator(cfg, net)

    def loop(work: Path, runtime: Runtime, report_: Report) -> None:
        run_cfg = with_roots(cfg, net.source_root, net.target_root)
        train_set = build_dataset(run_cfg.data, cfg.synth, "source")
        adversarial = cfg.adapt.lambda_adv > 0
        target_set = build_dataset(run_cfg.data, cfg.synth, "target") if adversarial else None
        pseudo_set = None
        if pseudo is not None:
            pseudo_root = pseudo.path / net.pseudo_folder
            pseudo_set = build_dataset(
                with_roots(cfg, target_root=pseudo_root).data, cfg.synth, "target_labelled"
            )
        torch.manual_seed(cfg.seed)
        model = (
            build_segmenter(cfg.model) if init is None else load_segmenter(cfg.model, network_file(init.path))
        )
        metrics = train_segmenter(
            stage_train_config(cfg, round_), model, train_set, None, work, report_, cfg.seed, resume=True,
            eval_protocol=cfg.eval.protocol, progress=progress, target_set=target_set, adapt=cfg.adapt,
            pseudo_set=pseudo_set, pseudo_weight=cfg.self_train.pseudo_weight,
            evaluator=evaluator if runtime.is_main else None, runtime=runtime, num_workers=cfg.data.num_workers,
            keep_checkpoints=cfg.select.keep_checkpoints,
        )  # fmt: skip
        if runtime.is_main:
            write_json(work / "metrics.json", metrics)

    stage_report = tagged(report, net.tag(round_))

    def build(work: Path) -> None:
        replay_evaluations(work / EVALUATIONS, stage_report)  # an interrupted build's, before it resumes
        run_stage(functools.partial(loop, work), cfg.scale, work,
                  recording_evaluations(stage_report, work / EVALUATIONS), ray_train_storage(store))  # fmt: skip
        if cfg.select.keep_checkpoints:
            select_checkpoint(work, cfg.select.by)

    stage, _, config, inputs = segmenter_identity(cfg, net, round_, pseudo, init)
    artifact = store.get_or_build(stage, config, inputs, build)
    if artifact.reused:
        replay_evaluations(artifact.path / EVALUATIONS, stage_report)
    return artifact


def segmenter_identity(cfg: ExperimentConfig, net: NetworkPath, round_: int, pseudo: Artifact | None = None,
                       init: Artifact | None = None) -> tuple[str, str, dict, dict[str, str]]:  # fmt: skip
    """(stage, artifact key, key config, inputs) of the network of path `net` after round `round_`."""
    inputs = dict(net.inputs)
    if round_:
        inputs.update(pseudo=pseudo.key, init=init.key)
    stage, config = f"segmenter_{net.name}", stage_keys.segmenter_key(cfg, net.name, round_)
    return stage, artifact_key(stage, config, inputs), config, inputs


def pair_probabilities(f_t: torch.nn.Module, f_s: torch.nn.Module | None, translated,
                       memo: dict[tuple[str, tuple[int, ...]], torch.Tensor] | None = None,
                       fixed: tuple[str, ...] = ("T", "S")):  # fmt: skip
    """ProbabilityFn pair for pseudo labels and evaluation: (softmax F_T(t), softmax F_S(t') or None).

    `translated` is the dataset of the translated images in the same order as the one being labelled.
    `memo` (a dict the caller keeps) holds, per batch of indices, the probabilities of the networks
    named in `fixed`, which do not change between calls, so each runs once per batch: F_S while F_T
    self-trains (fixed=("S",)), both while they label (the second pass of per-class thresholds
    reuses the first's).
    """

    from symda.evaluate import model_device

    def probabilities(
        name: str, net: torch.nn.Module, images: Callable[[], torch.Tensor], key
    ) -> torch.Tensor:
        kept = memo is not None and name in fixed
        if kept and (name, key) in memo:
            return memo[(name, key)]
        p = torch.softmax(net(images().to(model_device(net)))["main"].float(), dim=1)
        if kept:
            memo[(name, key)] = p
        return p

    def fn(images: torch.Tensor, indices: list[int]):
        key = tuple(indices)
        p_t = probabilities("T", f_t, lambda: images, key)
        if f_s is None:
            return p_t, None
        p_s = probabilities("S", f_s, lambda: torch.stack([translated[i]["image"] for i in indices]), key)
        return p_t, p_s.to(p_t.device)

    return fn


def probability_memo(
    dataset, cfg: ExperimentConfig, networks: int, shared_by: tuple | None = None
) -> dict | None:
    """A memo for `pair_probabilities` when `networks` networks' output probabilities over `dataset`
    (at 1/8 of its input size, float32) fit in data.cache_mb, else None: on SynthCity they take a few MB,
    on Cityscapes train (2,975 frames) several GB, where recomputing is the better trade.

    shared_by: what identifies the probabilities (the networks' artifact keys, the dataset's root and
    view): the memo is then this process's one for them, so the trials one Ray actor runs in turn
    (reuse_actors), which all label T with the same round-0 F_T and F_S and score beside the same F_S,
    compute those probabilities once. The last _SHARED_MEMOS_KEPT such memos are kept."""
    if probabilities_bytes(dataset, networks) > cfg.data.cache_mb * 2**20:
        return None
    if shared_by is None:
        return {}
    return shared_memo(("probabilities", *memo_key(dataset, cfg, shared_by)), dict)


def memo_key(dataset, cfg: ExperimentConfig, shared_by: tuple) -> tuple:
    """What a shared memo over `dataset` depends on: `shared_by` (networks, roots) and how the
    dataset is fed to them (images, input size, normalisation, batch size)."""
    return (*shared_by, len(dataset), tuple(dataset.size), cfg.data.normalize, cfg.eval.batch_size)


def probabilities_bytes(dataset, networks: int) -> int:
    """Bytes of `networks` networks' float32 probabilities over `dataset` at 1/8 of its input size."""
    h, w = dataset.size
    return networks * len(dataset) * NUM_CLASSES * (h // 8 + 1) * (w // 8 + 1) * 4


def shared_memo(key: tuple, make: Callable[[], Any]) -> Any:
    """This process's memo for `key` (made by `make()` the first time): what the trials one Ray actor
    runs in turn (reuse_actors) can compute once. The last _SHARED_MEMOS_KEPT memos used are kept."""
    memo = _SHARED_MEMOS.pop(key) if key in _SHARED_MEMOS else make()
    _SHARED_MEMOS[key] = memo  # now the most recent
    while len(_SHARED_MEMOS) > _SHARED_MEMOS_KEPT:
        _SHARED_MEMOS.pop(next(iter(_SHARED_MEMOS)))
    return memo


_SHARED_MEMOS: dict[tuple, Any] = {}  # insertion order = use order (shared_memo)
_SHARED_MEMOS_KEPT = 3  # a trial's labelling probabilities and maps, its evaluation partner's probabilities


def stage_evaluator(
    cfg: ExperimentConfig,
    net: NetworkPath,
    partner: Artifact | Callable[[], Artifact] | None = None,
    partner_val: Path | None = None,
) -> Evaluator:
    """evaluator(model) for the network of path `net` at each of its evaluations.

    One pass over the path's val split (V for F_T, V' for F_S) gives val_miou (val_miou_se,
    val_per_class_iou) and every validator of symda.select.VALIDATORS by name (none reads a target
    label); with a fixed `partner` network (F_S beside F_T's self-training, on `partner_val` = V') also
    the fused val_miou_fused (val_miou_fused_se) and the agreement validators. source_miou scores the
    network on the path's held-out source images (S' for F_T, S for F_S; data.source_holdout).
    Datasets and the partner load at the first evaluation; the partner's probabilities are kept
    (it does not change), so a network that comes from the store costs nothing. `partner` may be a
    function that returns the partner's artifact (one still being built beside this stage: the
    first evaluation waits for it).
    """
    loaded: dict[str, Any] = {}

    def evaluator(model: torch.nn.Module) -> dict[str, Any]:
        if not loaded:
            fixed = partner() if callable(partner) else partner
            loaded["key"] = evaluation_key(cfg, net, fixed, partner_val)
            loaded["val"] = build_dataset(with_roots(cfg, target_root=net.val_root).data, cfg.synth, "val")
            loaded["holdout"] = source_holdout(cfg, net.source_root)
            loaded["f_s"] = loaded["val_t"] = loaded["memo"] = None
            if fixed is not None:
                loaded["val_t"] = build_dataset(with_roots(cfg, target_root=partner_val).data, cfg.synth,
                                                "val", with_labels=False)  # fmt: skip
                loaded["f_s"] = load_segmenter(cfg.model, network_file(fixed.path))
                loaded["memo"] = probability_memo(
                    loaded["val"], cfg, 1, ("partner", fixed.key, str(partner_val))
                )
        scores = score_network(cfg, model, loaded["val"], loaded["f_s"], loaded["val_t"], loaded["holdout"],
                               loaded["memo"])  # fmt: skip
        out = {"val_miou": scores.single.miou, "val_miou_se": scores.single.miou_se,
               "val_per_class_iou": scores.single.per_class, **scores.validators, "eval_key": loaded["key"]}  # fmt: skip
        if scores.fused is not None:
            out.update(val_miou_fused=scores.fused.miou, val_miou_fused_se=scores.fused.miou_se,
                       val_per_class_iou_fused=scores.fused.per_class)  # fmt: skip
        return out

    return evaluator


EVALUATION_VERSION = 1  # bump when a change to the evaluation code changes its numbers


def evaluation_key(
    cfg: ExperimentConfig, net: NetworkPath, partner: Artifact | None = None, partner_val: Path | None = None
) -> str:
    """What `stage_evaluator`'s numbers depend on besides the network: the evaluation settings, the
    val set, the partner network and its V', the held-out source images. Two evaluations of one
    network under one key are the same numbers, so the run's final evaluation can be the stage's own
    (`stored_evaluation`); none of this is in the stage's artifact key (it is REPORTING there)."""

    def where(path: Path | None) -> str | None:
        return str(Path(path).resolve()) if path is not None else None

    return artifact_key("evaluation", {
        "version": EVALUATION_VERSION, "protocol": cfg.eval.protocol, "fusion_weight": cfg.eval.fusion_weight,
        "val_split": cfg.data.val_split, "val_root": where(net.val_root), "partner": partner.key if partner else None,
        "partner_val": where(partner_val) if partner else None, "source_holdout": cfg.data.source_holdout,
        "holdout_root": where(net.source_root) if cfg.data.source_holdout else None, "validators": list(VALIDATORS),
    })  # fmt: skip


def stored_evaluation(cfg: ExperimentConfig, f_t: Artifact, net: NetworkPath, partner: Artifact | None,
                      partner_val: Path | None) -> dict[str, Any] | None:  # fmt: skip
    """`evaluate_method`'s record from F_T's stage's own evaluation of the network its artifact
    delivers (the last, or the selected checkpoint), when that evaluation was made under the same
    `evaluation_key` (the same partner F_S among it); None when it was not (then evaluate again)."""
    evaluations = read_evaluations(f_t.path / EVALUATIONS)
    if not evaluations:
        return None
    selection = f_t.path / SELECTION
    step = _read_json(selection)["step"] if selection.is_file() else max(e["step"] for e in evaluations)
    record = next((e for e in evaluations if e["step"] == step), None)
    if record is None or record.get("eval_key") != evaluation_key(cfg, net, partner, partner_val):
        return None
    fused = "val_miou_fused" if partner is not None else "val_miou"
    return {"miou": record["val_miou"], "miou_se": record["val_miou_se"], "iou": record["val_per_class_iou"],
            "miou_fused": record[fused], "miou_fused_se": record[f"{fused}_se"],
            "iou_fused": record["val_per_class_iou_fused" if partner is not None else "val_per_class_iou"],
            **{name: record.get(name, math.nan) for name in VALIDATORS}}  # fmt: skip


def source_holdout(cfg: ExperimentConfig, source_root: Path) -> SegmentationDataset | None:
    """The held-out labelled source images in `source_root`'s style (S or S'), or None without a holdout."""
    if not cfg.data.source_holdout:
        return None
    return build_dataset(with_roots(cfg, source_root=source_root).data, cfg.synth, "source_holdout")


def score_network(cfg: ExperimentConfig, f_t: torch.nn.Module, val: SegmentationDataset,
                  f_s: torch.nn.Module | None = None, val_t: SegmentationDataset | None = None,
                  holdout: SegmentationDataset | None = None, memo: dict | None = None,
                  save_predictions: Path | None = None, save_color: bool = False, progress: bool = False):  # fmt: skip
    """symda.evaluate.PairScores of F_T on `val` (with F_S on `val_t` = V': the fusion and the
    agreement validators), every validator included: F_T on flipped and rescaled val images, and its
    mIoU on the held-out source images `holdout` (source_miou)."""
    from symda.evaluate import evaluate, evaluate_pair, segmenter_probabilities

    probabilities = segmenter_probabilities(f_t)
    source_miou = math.nan
    if holdout is not None:
        source_miou = evaluate(probabilities, holdout, cfg.eval.protocol, cfg.eval.batch_size).miou
    pair = pair_probabilities(f_t, f_s, val_t, memo, fixed=("S",))
    return evaluate_pair(pair, val, cfg.eval.fusion_weight, cfg.eval.protocol, cfg.eval.batch_size,
                         save_predictions, save_color, progress, augment=probabilities, source_miou=source_miou)  # fmt: skip


SELECTION = "selection.json"  # which kept checkpoint a segmenter artifact delivers, and why


def select_checkpoint(stage_dir: Path, by: str) -> dict[str, Any]:
    """Pick among the checkpoints a segmenter stage kept the one its `by` validator scored highest
    (from the stage's evaluations.jsonl) and write SELECTION naming it; `network_file` then delivers
    it. With no finite score (e.g. agreement where the stage has no partner) the last is kept, and
    the file says so."""
    from symda.adapt.loop import kept_checkpoint
    from symda.select.stats import choose

    evaluations = [e for e in read_evaluations(stage_dir / EVALUATIONS)
                   if kept_checkpoint(stage_dir, e["step"]).is_file()]  # fmt: skip
    if not evaluations:
        raise FileNotFoundError(
            f"{stage_dir}: select.keep_checkpoints is on but no evaluated checkpoint was kept"
        )
    chosen = choose(evaluations, by)
    note = ""
    if chosen is None:
        chosen = max(evaluations, key=lambda e: e["step"])
        note = f"{by} has no finite score at any evaluation: the last checkpoint is delivered"
        log.warning("%s: %s", stage_dir.name, note)
    selection = {"by": by, "step": chosen["step"], "file": str(kept_checkpoint(Path("."), chosen["step"])),
                 "score": chosen.get(by), "val_miou": chosen.get("val_miou"), "note": note,
                 "candidates": [{"step": e["step"], by: e.get(by)} for e in evaluations]}  # fmt: skip
    write_json(stage_dir / SELECTION, selection)
    return selection


def network_file(stage_dir: Path) -> Path:
    """The weights a segmenter artifact delivers: its selected checkpoint (SELECTION), else its last."""
    path = Path(stage_dir) / SELECTION
    if path.is_file():
        return Path(stage_dir) / _read_json(path)["file"]
    return Path(stage_dir) / "checkpoint.pt"


def labelling_inputs(cfg: ExperimentConfig, roots: DomainRoots, f_t: Artifact, f_s: Artifact | None):
    """What labels the target train split: (the pair of paths' probabilities, the split T, the same
    split with its true labels for diagnostics only, a MapsMemo of the full-size maps or None), F_T
    and F_S loaded from their artifacts. Probabilities and maps are this process's memos for these
    networks on these images where they fit in data.cache_mb (the maps in what the probabilities
    leave), so the next trial on the same Ray actor does not recompute them."""
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
    memo = probability_memo(target, cfg, count, shared_by)
    maps = None
    if memo is not None:
        left = cfg.data.cache_mb * 2**20 - probabilities_bytes(target, count)
        maps = shared_memo(("maps", *memo_key(target, cfg, shared_by)), lambda: MapsMemo(left, len(target)))
    return pair_probabilities(model_t, model_s, translated, memo), target, labelled, maps


def pseudo_stage(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    roots: DomainRoots,
    f_t: Artifact,
    f_s: Artifact | None,
    round_: int,
    progress: bool = False,
) -> Artifact:
    """Stage 3: pseudo labels of T from F_T(t) and F_S(t'). The artifact holds `data/` (T + labels, and
    their statistics in data/pseudo_stats.json) and, for the symmetric path, `data_translated/` (T' + the
    same labels, hard links)."""
    from symda.data.cityscapes import list_cityscapes
    from symda.pseudo import generate_pseudo_labels

    def build(work: Path) -> None:
        labels, labels_s = work / PSEUDO_FOLDERS["T"], work / PSEUDO_FOLDERS["S"]
        pair, target, labelled, maps = labelling_inputs(cfg, roots, f_t, f_s)
        with torch.no_grad():
            generate_pseudo_labels(
                pair, target, cfg.pseudo, labels, roots.target, labelled_dataset=labelled,
                batch_size=cfg.eval.batch_size, progress=progress, keep_mb=cfg.data.cache_mb, memo=maps,
            )  # fmt: skip
        if f_s is not None:
            from symda.data.cityscapes import label_path_for
            from symda.io import link_or_copy

            for s in list_cityscapes(roots.target_translated, "train", with_labels=False):
                link_or_copy(s.image, labels_s / "leftImg8bit" / "train" / s.name)
                link_or_copy(
                    label_path_for(labels, "train", s.name), label_path_for(labels_s, "train", s.name)
                )

    inputs = {"F_T": f_t.key, **({"F_S": f_s.key} if f_s is not None else {})}
    return store.get_or_build("pseudo", stage_keys.pseudo_key(cfg, round_), inputs, build)


@dataclasses.dataclass(frozen=True)
class Adapted:
    """The upstream of every self-training round: data roots and keys, the two paths, the round-0 networks."""

    roots: DomainRoots
    keys: dict[str, str]  # {stage name: artifact key} of the translator and translations
    path_t: NetworkPath
    path_s: NetworkPath
    f_t: Artifact
    f_s: Artifact | None  # None without adapt.symmetric

    def artifact_keys(self) -> dict[str, str]:
        """{stage name: key} of everything up to the adapted networks, as records list them."""
        return {**self.keys, "F_T_r0": self.f_t.key, **({"F_S_r0": self.f_s.key} if self.f_s else {})}


def adapted_networks(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    roots: DomainRoots,
    keys: dict[str, str],
    report: Report,
    progress: bool = False,
) -> Adapted:
    """Stage 2: adversarial adaptation of F_T (and F_S when adapt.symmetric) on translation_stage's output.

    F_T's evaluations are scored beside F_S (the fused score and the agreement validators), so a study
    or a checkpoint selection can use them from the first stage on. With scale.parallel_paths on a
    CPU of 2 or more cores, F_S trains in a process of its own while F_T trains here, each on half
    the cores (train.threads each when set; `adapt_side_by_side`); F_T's evaluations wait for F_S.
    Otherwise F_S first, then F_T.
    """
    path_t, path_s = network_paths(roots, keys)
    if not cfg.adapt.symmetric:
        f_t = segmenter_stage(cfg, store, path_t, 0, report, progress=progress)
        return Adapted(roots, keys, path_t, path_s, f_t, None)
    if not adapt_side_by_side(cfg, store, path_t, path_s):
        f_s = segmenter_stage(cfg, store, path_s, 0, report, progress=progress)
        evaluator = stage_evaluator(cfg, path_t, f_s, path_s.val_root)
        f_t = segmenter_stage(cfg, store, path_t, 0, report, progress=progress, evaluator=evaluator)
        return Adapted(roots, keys, path_t, path_s, f_t, f_s)
    threads = cfg.train.threads or max(1, cpu_count() // 2)
    f_s_build = BackgroundCall(
        _round_0_segmenter, (cfg, str(store.root), path_s), report, threads, "F_S's adaptation"
    )
    try:
        with torch_threads(threads):
            evaluator = stage_evaluator(cfg, path_t, f_s_build.result, path_s.val_root)
            f_t = segmenter_stage(cfg, store, path_t, 0, report, progress=progress, evaluator=evaluator)
        f_s = f_s_build.result()
    except BaseException:
        f_s_build.stop()  # its build folder stays and resumes with the next run
        raise
    return Adapted(roots, keys, path_t, path_s, f_t, f_s)


def adapt_side_by_side(
    cfg: ExperimentConfig, store: ArtifactStore, path_t: NetworkPath, path_s: NetworkPath
) -> bool:
    """Whether F_S and F_T adapt at the same time (see adapted_networks): scale.parallel_paths, loops
    in this process on the CPU, at least 2 cores, and neither network in the store yet."""
    if not cfg.scale.parallel_paths or cfg.scale.num_workers or cpu_count() < 2:
        return False
    if cfg.scale.use_gpu and torch.cuda.is_available():
        return False
    return not any(store.exists(*segmenter_identity(cfg, net, 0)[:2]) for net in (path_t, path_s))


def _round_0_segmenter(cfg: ExperimentConfig, store_root: str, net: NetworkPath, report: Report) -> Artifact:
    """segmenter_stage of round 0 without an evaluation partner (what F_S's BackgroundCall runs)."""
    return segmenter_stage(cfg, ArtifactStore(store_root), net, 0, report)


UPSTREAM_STAGES = ("data", "translate", "adapt")


def build_upstream(
    cfg: ExperimentConfig, until: str, report: Report, progress: bool = False
) -> dict[str, str]:
    """Build (or find) the stages up to and including `until` (one of UPSTREAM_STAGES); return their keys.

    A sweep calls this once before its trials, so trials that share an upstream never race to build it.
    """
    if until not in UPSTREAM_STAGES:
        raise ValueError(f"until: {until!r} is not one of {list(UPSTREAM_STAGES)}")
    store = ArtifactStore(cfg.artifacts_dir)
    prepare_data(cfg, ("source", "val"), progress)
    if until == "data":
        return {}
    if until == "translate":
        return translation_stage(cfg, store, report, progress)[1]
    return adapted_networks(
        cfg, store, *translation_stage(cfg, store, report, progress), report, progress
    ).artifact_keys()


def evaluate_method(
    cfg: ExperimentConfig,
    f_t_checkpoint: Path,
    f_s_checkpoint: Path | None = None,
    val_translated_root: Path | None = None,
    save_predictions: Path | None = None,
    save_color: bool = False,
    progress: bool = False,
    source_root: Path | None = None,
) -> dict[str, Any]:
    """The method's evaluation on cfg's val split: F_T alone and, given F_S and V' = G(V, source)
    (val_translated_root, Cityscapes layout), the fusion eval.fusion_weight * P_T(v) + (1 - w) * P_S(v')
    and every validator, in one pass (source_miou on the held-out images of `source_root`, F_T's S',
    when data.source_holdout is set).

    Returns miou, miou_se (its bootstrap std over the val images), iou (per class), miou_fused,
    miou_fused_se, iou_fused (= F_T's without F_S), and each validator by name (symda.select.VALIDATORS).
    """
    val = build_dataset(cfg.data, cfg.synth, "val")
    model_t = load_segmenter(cfg.model, f_t_checkpoint)
    model_s, val_t = None, None
    if f_s_checkpoint is not None:
        if val_translated_root is None:
            raise ValueError("fused evaluation needs V' (val_translated_root) beside F_S")
        model_s = load_segmenter(cfg.model, f_s_checkpoint)
        val_t = build_dataset(with_roots(cfg, target_root=val_translated_root).data, cfg.synth, "val")
        if [s.name for s in val_t.samples] != [s.name for s in val.samples]:
            raise DatasetError(
                f"{val_translated_root}: its val images are not those of {cfg.data.target_root or 'SynthCity'}"
            )
    holdout = source_holdout(cfg, source_root) if source_root is not None else None
    scores = score_network(cfg, model_t, val, model_s, val_t, holdout, save_predictions=save_predictions,
                           save_color=save_color, progress=progress)  # fmt: skip
    fused = scores.fused or scores.single
    return {"miou": scores.single.miou, "miou_se": scores.single.miou_se, "iou": scores.single.per_class,
            "miou_fused": fused.miou, "miou_fused_se": fused.miou_se, "iou_fused": fused.per_class,
            **scores.validators}  # fmt: skip


# Pseudo-label statistics a run reports per round (console, log.jsonl, TensorBoard): coverage and,
# for diagnostics only, the precision of the kept labels (overall and per class).
REPORTED_PSEUDO_STATS = ("coverage", "mean_conf", "mean_consis", "agreement", "diag_pseudo_accuracy",
                         "diag_pseudo_precision_per_class", "coverage_per_class")  # fmt: skip
# Pseudo-label statistics a run's record holds per round (the artifact's pseudo_stats.json has them all).
RECORDED_PSEUDO_STATS = (
    "coverage",
    "mean_conf",
    "mean_consis",
    "agreement",
    "diag_pseudo_accuracy",
    "diag_pred_miou",
)


def run_experiment(
    cfg: ExperimentConfig, out_dir: Path, report: Report, progress: bool = False
) -> dict[str, Any]:
    """The whole method: translate -> adapt F_T (and F_S) -> rounds of pseudo labels + self-training
    -> evaluate single and fused. Every stage comes from the store when it was built before.

    Writes config.yaml, result.json (flat record), metrics.json and stage log lines into out_dir.
    Every segmenter stage evaluates (val_miou and every validator; self-training of F_T beside F_S
    also the fused score and the agreement validators) every train.eval_every / self_train.eval_every
    steps and at its end, reported under its stage tag ("adapt_T_r<round>"); the record's "selection"
    says which evaluation each validator would have picked. The last report has stage "result" with
    the final miou, miou_se, miou_fused and every validator. Every report, and each stage's
    pictures as it finishes, also go to TensorBoard (out_dir/tensorboard, track.tensorboard); each
    round's pseudo-label statistics are a report of stage "pseudo_r<round>".
    """
    out_dir = Path(out_dir)
    with tensorboard_log(out_dir, cfg.track.tensorboard) as tb:
        return _run_method(cfg, out_dir, tb.wrap(report), tb, progress)


def _run_method(
    cfg: ExperimentConfig, out_dir: Path, report: Report, tb: TensorBoardLog, progress: bool
) -> dict[str, Any]:
    """run_experiment's stages, `report` and `tb` already the run's TensorBoard's."""
    from symda.results import make_record, write_record

    store = start_run(cfg, out_dir)
    seconds: dict[str, float] = {}
    peak_mb: dict[str, float] = {}
    clock = time.perf_counter()
    peak_rss_mb()  # from here on each stage's own peak

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        peak = peak_rss_mb()  # a stage that laps again (one per round) keeps its highest
        peak_mb[name] = max(peak_mb[name], peak) if name in peak_mb else peak
        clock = now

    prepare_data(cfg, ("source", "val"), progress)
    lap("data")
    roots, keys = translation_stage(cfg, store, report, progress)
    lap("translate")
    synth = synthcity_samples(cfg)
    if synth is not None:
        tb.image("data/synthcity_samples", synth)
    if "translator" in keys:
        for step, grid in sample_steps(store.path("translator", keys["translator"]) / "samples"):
            tb.image("translate/samples", grid, step)
    up = adapted_networks(cfg, store, roots, keys, report, progress)
    f_t, f_s = up.f_t, up.f_s
    lap("adapt")
    artifacts = up.artifact_keys()
    retrain_s = cfg.self_train.paths == "both"
    pseudo_stats: dict[str, float] = {}
    for r in range(1, cfg.self_train.rounds + 1) if cfg.self_train.enabled else ():
        pl = pseudo_stage(cfg, store, roots, f_t, f_s, r, progress)
        stats = _read_json(pl.path / PSEUDO_FOLDERS["T"] / STATS_FILE)
        pseudo_stats.update({f"pseudo_r{r}.{k}": stats[k] for k in RECORDED_PSEUDO_STATS if k in stats})
        report(
            {"stage": f"pseudo_r{r}", "step": r, **{k: stats[k] for k in REPORTED_PSEUDO_STATS if k in stats}}
        )
        if (pl.path / PSEUDO_FOLDERS["T"] / FIGURE_FILE).is_file():
            tb.image(f"pseudo_r{r}/labels", pl.path / PSEUDO_FOLDERS["T"] / FIGURE_FILE, r)
        artifacts[f"pseudo_r{r}"] = pl.key
        lap("pseudo")
        evaluator = stage_evaluator(cfg, up.path_t, f_s, up.path_s.val_root)
        f_t = segmenter_stage(cfg, store, up.path_t, r, report, pl, f_t, progress, evaluator)
        if f_s is not None and retrain_s:
            f_s = segmenter_stage(cfg, store, up.path_s, r, report, pl, f_s, progress)
        artifacts[f"F_T_r{r}"] = f_t.key
        if f_s is not None:
            artifacts[f"F_S_r{r}"] = f_s.key
        lap("self_train")

    # The final F_T was evaluated beside the final F_S at the end of its stage (unless F_S trained
    # after it: self_train.paths both): those are the numbers, and a rerun from the store costs nothing.
    metrics = stored_evaluation(cfg, f_t, up.path_t, f_s, up.path_s.val_root)
    if metrics is None:
        f_s_checkpoint = network_file(f_s.path) if f_s is not None else None
        metrics = evaluate_method(cfg, network_file(f_t.path), f_s_checkpoint, roots.val_translated,
                                  progress=progress, source_root=up.path_t.source_root)  # fmt: skip
    predictions = prediction_figure(cfg, f_t, f_s, roots.val_translated, out_dir / PREDICTIONS_FILE)
    tb.image("result/predictions", predictions)
    lap("evaluate")
    metrics.update(pseudo_stats, artifacts=artifacts, seconds=seconds, peak_mb=peak_mb,
                   selection=selections(store, artifacts))  # fmt: skip
    write_json(out_dir / "metrics.json", metrics)
    write_pictures(out_dir, {**run_pictures(cfg, store, artifacts),
                             "predictions on val (F_T, fused, ground truth)": predictions})  # fmt: skip
    record = make_record(cfg, metrics, run_id=out_dir.name)
    write_record(out_dir, record)
    final = ("miou", "miou_se", "miou_fused", *VALIDATORS)
    report({"stage": "result", **{k: metrics[k] for k in final}})
    return record


PICTURES = "pictures.md"  # a run folder's index of the pictures its stages drew (in the store)


def run_pictures(cfg: ExperimentConfig, store: ArtifactStore, artifacts: dict[str, str]) -> dict[str, Path]:
    """{what: file} of the pictures a run's stages drew, where they lie: SynthCity's sample pairs,
    the translator's sample grids (the last one), each round's pseudo-label panels."""
    pictures: dict[str, Path] = {}
    synth = synthcity_samples(cfg)
    if synth is not None:
        pictures["SynthCity: source and target-val pairs"] = synth
    if "translator" in artifacts:
        grids = sample_steps(store.path("translator", artifacts["translator"]) / "samples")
        if grids:
            pictures[f"translator: sample translations ({grids[-1][1].stem})"] = grids[-1][1]
    for name, key in sorted(artifacts.items()):
        if name.startswith("pseudo_r"):
            figure = store.path("pseudo", key) / PSEUDO_FOLDERS["T"] / FIGURE_FILE
            if figure.is_file():
                pictures[
                    f"pseudo labels, round {name.removeprefix('pseudo_r')}: P_T, P_S, M_conf, labels"
                ] = figure
    return pictures


def synthcity_samples(cfg: ExperimentConfig) -> Path | None:
    """SynthCity's sample pairs (samples.png) when the run reads the generated SynthCity, else None."""
    synth = Path(cfg.synth.root) / "samples.png"
    if (
        synth.is_file()
        and Path(cfg.synth.root).resolve() in resolve_roots(cfg.data, cfg.synth)[1].resolve().parents
    ):
        return synth
    return None


PREDICTIONS_FILE = "predictions.png"  # a run folder's picture of its final networks on val images
PREDICTION_ROWS = 4


def prediction_figure(cfg: ExperimentConfig, f_t: Artifact, f_s: Artifact | None, val_translated: Path,
                      path: Path) -> Path:  # fmt: skip
    """The run's final F_T (and the fusion with F_S on V') on the first PREDICTION_ROWS val images,
    beside the ground truth: `save_prediction_figure` at `path`."""
    from symda.evaluate import save_prediction_figure

    val = build_dataset(cfg.data, cfg.synth, "val")
    model_s, val_t = None, None
    if f_s is not None:
        model_s = load_segmenter(cfg.model, network_file(f_s.path))
        val_t = build_dataset(
            with_roots(cfg, target_root=val_translated).data, cfg.synth, "val", with_labels=False
        )
    pair = pair_probabilities(load_segmenter(cfg.model, network_file(f_t.path)), model_s, val_t)
    rows = list(range(min(PREDICTION_ROWS, len(val))))
    return save_prediction_figure(pair, val, cfg.eval.fusion_weight, path, rows)


def write_pictures(out_dir: Path, pictures: dict[str, Path]) -> Path:
    """out_dir/PICTURES: one line per picture, its absolute path (the files stay in the store)."""
    lines = [f"# Pictures of the run {out_dir.name}", ""]
    lines += [f"- {what}: {Path(path).resolve()}" for what, path in pictures.items()] or ["(none)"]
    return atomic_write_text(out_dir / PICTURES, "\n".join(lines) + "\n")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since the last call (Linux: VmHWM, then reset by
    writing 5 to clear_refs), so that a run reports each stage's own peak; NaN where /proc cannot
    tell. Stage loops on Ray Train workers (scale.num_workers > 0) run in other processes."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, StopIteration, ValueError):
        return math.nan
    return float(peak)


def selections(store: ArtifactStore, artifacts: dict[str, str]) -> dict[str, dict[str, Any]]:
    """For each segmenter stage of a run ({"F_T_r1": key, ...}), which of its evaluations every
    validator would pick and that evaluation's true val mIoU, beside "last" and "best" (symda.select.
    stats.checkpoint_choices), and "delivered": the step the artifact delivers. Stages evaluated once
    are left out (nothing to choose)."""
    from symda.select.stats import checkpoint_choices

    out: dict[str, dict[str, Any]] = {}
    for name, key in artifacts.items():
        if not name.startswith(("F_T_r", "F_S_r")):
            continue
        stage_dir = store.path(f"segmenter_{name[2]}", key)
        evaluations = read_evaluations(stage_dir / EVALUATIONS)
        if len(evaluations) < 2:
            continue
        choices: dict[str, Any] = checkpoint_choices(evaluations, list(VALIDATORS))
        selection = stage_dir / SELECTION
        choices["delivered"] = (
            _read_json(selection)["step"] if selection.is_file() else choices["last"]["step"]
        )
        out[name] = choices
    return out


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(Path(path).read_text())
