"""Chains the stages through the artifact store; a finished stage is never recomputed.

One concept a file: `roots` (where each path's data lies), `stages` (data, translation, pseudo
labels), `segmenters` (F_T and F_S, adapted and self-trained), `scoring` (evaluations), `selection`
(a segmenter's evaluations file and the network it delivers), `memo` (outputs kept between
evaluations and trials), `outputs` (pictures, stage costs) and `run` (the runs, read as the method).
"""

from symda.pipeline.memo import Memos, probability_memo
from symda.pipeline.roots import DomainRoots, NetworkPath, network_paths, with_roots
from symda.pipeline.run import UPSTREAM_STAGES, build_upstream, run_experiment, run_supervised
from symda.pipeline.scoring import (
    evaluate_method,
    evaluation_key,
    pair_probabilities,
    score_network,
    source_holdout,
    stage_evaluator,
)
from symda.pipeline.segmenters import adapted_networks, segmenter_stage, stage_terms
from symda.pipeline.selection import EVALUATIONS, SELECTION, network_file, read_evaluations
from symda.pipeline.stages import labelling_inputs, pseudo_stage, translation_stage, translator_stage

__all__ = [
    "EVALUATIONS", "SELECTION", "UPSTREAM_STAGES", "DomainRoots", "Memos", "NetworkPath", "adapted_networks",
    "build_upstream", "evaluate_method", "evaluation_key", "labelling_inputs", "network_file", "network_paths",
    "pair_probabilities", "probability_memo", "pseudo_stage", "read_evaluations", "run_experiment",
    "run_supervised", "score_network", "segmenter_stage", "source_holdout", "stage_evaluator", "stage_terms",
    "translation_stage", "translator_stage", "with_roots",
]  # fmt: skip
