"""Stages 2 and 4: the segmentation networks F_T and F_S, adapted (round 0) and self-trained (round r).

A network's stage is the one segmentation loop (symda.adapt.loop) over its loss terms: source
cross-entropy, pseudo-label cross-entropy in a self-training round, and every adaptation term the
config switches on (symda.terms). Every evaluation is kept in the artifact and replayed when the
artifact comes from the store (symda.pipeline.selection).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from symda import stage_keys
from symda.artifacts import Artifact, ArtifactStore, artifact_key
from symda.config import ExperimentConfig, stage_train_config
from symda.data import build_dataset
from symda.data.dataset import PairedDataset
from symda.distributed import BackgroundCall, Report, Runtime, cpu_count, run_stage, torch_threads
from symda.io import write_json
from symda.terms import adaptation_terms
from symda.terms.base import Term, data_streams
from symda.terms.cross_entropy import PseudoLabelCrossEntropy, SourceCrossEntropy
from symda.terms.online_labels import OnlinePseudoLabels

from .memo import Memos
from .roots import PSEUDO_FOLDERS, DomainRoots, NetworkPath, network_paths, with_roots
from .scoring import Evaluator, stage_evaluator
from .selection import network_file, recording_evaluations, replay_evaluations, select_checkpoint
from .stages import ray_train_storage, tagged


def stage_terms(cfg: ExperimentConfig, round_: int, online: Term | None = None) -> tuple[Term, ...]:
    """The loss terms of a segmenter stage: source cross-entropy, pseudo-label cross-entropy in a
    self-training round (weight self_train.pseudo_weight; `online`, the round's OnlinePseudoLabels
    term, in its place with self_train.labels online), and every adaptation term cfg.adapt switches
    on (in a self-training round only with self_train.adaptation_terms)."""
    pseudo_term = online if online is not None else PseudoLabelCrossEntropy(cfg.self_train.pseudo_weight)
    own = [SourceCrossEntropy(), *([pseudo_term] if round_ else [])]
    adaptation = adaptation_terms(cfg.adapt) if not round_ or cfg.self_train.adaptation_terms else []
    return (*own, *adaptation)


def segmenter_identity(cfg: ExperimentConfig, net: NetworkPath, round_: int, pseudo: Artifact | None = None,
                       init: Artifact | None = None, partner: Partner | None = None,
                       ) -> tuple[str, str, dict, dict[str, str]]:  # fmt: skip
    """(store stage, artifact key, key config, inputs) of the network of path `net` after round `round_`."""
    inputs = dict(net.inputs)
    if round_:
        inputs.update(pseudo=pseudo.key, init=init.key)
        if (
            partner is not None and cfg.self_train.labels == "online"
        ):  # it labels every batch with the teacher
            inputs.update(partner=partner.network.key)
    stage, config = net.network(round_).store_stage, stage_keys.segmenter_key(cfg, net.name, round_)
    return stage, artifact_key(stage, config, inputs), config, inputs


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
    partner: Partner | None = None,
) -> Artifact:
    """The segmentation network of path `net` after round `round_`, reported under its tag ("F_T_r1").

    Round 0 adapts from a fresh network (the adaptation terms cfg.adapt switches on); a later round
    self-trains on the `pseudo` artifact's images + labels in this path's style, with the adaptation
    terms kept (self_train.adaptation_terms), starting from the previous round's network `init` (or,
    with self_train.init "restart", from the initial weights). Every evaluation scores the
    network with `evaluator` (default: `stage_evaluator` of the path, no partner): val mIoU and every
    validator. With select.keep_checkpoints the loop keeps each evaluated network and the artifact
    delivers the one select.by picks (`select_checkpoint`, `network_file`). With self_train.labels
    online the round learns the labels of a mean teacher instead (`online_labels_term`), compared with
    `partner` (the other path's network at the round's start) where the run has one.
    """
    if (pseudo is None) != (round_ == 0) or (init is None) != (round_ == 0):
        raise ValueError(
            f"segmenter_stage: round {round_} needs pseudo labels and an init network from round >= 1 only"
        )
    from symda.adapt.loop import SegmenterJob, train_segmenter
    from symda.adapt.networks import build_segmenter, load_segmenter

    evaluator = evaluator or stage_evaluator(cfg, net)

    def loop(work: Path, runtime: Runtime, report_: Report) -> None:
        online = (
            online_labels_term(cfg, net, pseudo, partner)
            if round_ and cfg.self_train.labels == "online"
            else None
        )
        terms = stage_terms(cfg, round_, online)
        read = data_streams(terms)
        run_cfg = with_roots(cfg, net.source_root, net.target_root)
        data = {"source": build_dataset(run_cfg.data, cfg.synth, "source")}
        if "target" in read:
            data["target"] = build_dataset(run_cfg.data, cfg.synth, "target")
            if online is not None and online.partner is not None:  # the same crops in the partner's style
                partner_cfg = with_roots(cfg, target_root=partner.path.target_root)
                data["target"] = PairedDataset(
                    data["target"], build_dataset(partner_cfg.data, cfg.synth, "target")
                )
        if "pseudo" in read:
            data["pseudo"] = build_dataset(with_roots(cfg, target_root=pseudo.path / net.pseudo_folder).data,
                                           cfg.synth, "target_labelled")  # fmt: skip
        torch.manual_seed(cfg.seed)
        # self_train.init "restart": a round trains the network from its initial weights (BDL's
        # self-training runs); `init` still labels the round (its key is an input).
        fresh = init is None or cfg.self_train.init == "restart"
        model = build_segmenter(cfg.model) if fresh else load_segmenter(cfg.model, network_file(init.path))
        job = SegmenterJob(stage_train_config(cfg, round_), data, terms, work, cfg.seed,
                           evaluator if runtime.is_main else None, resume=True,
                           keep_checkpoints=cfg.select.keep_checkpoints, num_workers=cfg.data.num_workers,
                           progress=progress)  # fmt: skip
        # Recorded where the checkpoints are written (rank 0's process, under Ray Train too, not the
        # driver a queue away), so an evaluation is on disk before its step's checkpoint (symda.adapt.loop).
        recording = recording_evaluations(report_, work) if runtime.is_main else report_
        metrics = train_segmenter(job, model, recording, runtime)
        if runtime.is_main:
            write_json(work / "metrics.json", metrics)

    stage_report = tagged(report, net.network(round_).tag)

    def build(work: Path) -> None:
        replay_evaluations(work, stage_report)  # an interrupted build's, before it resumes
        run_stage(functools.partial(loop, work), cfg.scale, work, stage_report, ray_train_storage(store))
        if cfg.select.keep_checkpoints:
            select_checkpoint(work, cfg.select.by)

    stage, _, config, inputs = segmenter_identity(cfg, net, round_, pseudo, init, partner)
    artifact = store.get_or_build(stage, config, inputs, build)
    if artifact.reused:
        replay_evaluations(artifact.path, stage_report)
    return artifact


@dataclasses.dataclass(frozen=True)
class Partner:
    """The other path of a self-training round and its network at the round's start."""

    path: NetworkPath
    network: Artifact


def online_labels_term(cfg: ExperimentConfig, net: NetworkPath, pseudo: Artifact,
                       partner: Partner | None) -> OnlinePseudoLabels:  # fmt: skip
    """The OnlinePseudoLabels term of a round of path `net`: the pseudo.* policy's rule with the
    thresholds the round's offline labels used (their pseudo_stats.json), beside `partner`'s network."""
    from symda.adapt.networks import load_segmenter
    from symda.data.labels import CLASS_NAMES
    from symda.io import read_json
    from symda.pseudo.generate import STATS_FILE
    from symda.pseudo.thresholds import policy_labels

    stats_file = pseudo.path / PSEUDO_FOLDERS["T"] / STATS_FILE
    thresholds = read_json(stats_file).get("thresholds", {})
    if set(thresholds) != set(CLASS_NAMES):
        raise ValueError(f"{stats_file}: no per-class thresholds for the online labels (an older artifact?)")
    rule = functools.partial(policy_labels, policy=cfg.pseudo,
                             thresholds=torch.tensor([thresholds[c] for c in CLASS_NAMES]))  # fmt: skip
    partner_net = load_segmenter(cfg.model, network_file(partner.network.path)) if partner else None
    st = cfg.self_train
    return OnlinePseudoLabels(st.pseudo_weight, st.teacher_ema, st.mix, rule, partner_net, net.name == "T")


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
        networks = {self.path_t.network(0).tag: self.f_t.key}
        if self.f_s is not None:
            networks[self.path_s.network(0).tag] = self.f_s.key
        return {**self.keys, **networks}


def adapted_networks(
    cfg: ExperimentConfig,
    store: ArtifactStore,
    roots: DomainRoots,
    keys: dict[str, str],
    report: Report,
    progress: bool = False,
    memos: Memos | None = None,
) -> Adapted:
    """Stage 2: adaptation of F_T (and F_S when adapt.symmetric) on translation_stage's output.

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
        evaluator = stage_evaluator(cfg, path_t, f_s, path_s.val_root, memos)
        f_t = segmenter_stage(cfg, store, path_t, 0, report, progress=progress, evaluator=evaluator)
        return Adapted(roots, keys, path_t, path_s, f_t, f_s)
    threads = cfg.train.threads or max(1, cpu_count() // 2)
    f_s_build = BackgroundCall(
        _round_0_segmenter, (cfg, str(store.root), path_s), report, threads, "F_S's adaptation"
    )
    try:
        with torch_threads(threads):
            evaluator = stage_evaluator(cfg, path_t, f_s_build.result, path_s.val_root, memos)
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
