"""Stage 3: confidence maps of the two paths, thresholds, and pseudo labels written in the Cityscapes layout.

`confidence_map` turns P_T (and P_S) into a prediction and M_conf; `StreamingClassHistogram` gives
per-class quantiles of M_conf in O(classes x bins) memory; `generate_pseudo_labels` runs the two-pass
streaming generator that writes labels the usual Cityscapes loader reads.
"""

from symda.pseudo.confidence import confidence_map, consistency_map, fuse, prob_map
from symda.pseudo.generate import (
    PairProbabilityFn,
    compute_thresholds,
    generate_pseudo_labels,
    iter_pixel_maps,
    save_pseudo_label_figure,
)
from symda.pseudo.thresholds import StreamingClassHistogram, class_thresholds, global_thresholds, select

__all__ = [
    "PairProbabilityFn",
    "StreamingClassHistogram",
    "class_thresholds",
    "compute_thresholds",
    "confidence_map",
    "consistency_map",
    "fuse",
    "generate_pseudo_labels",
    "global_thresholds",
    "iter_pixel_maps",
    "prob_map",
    "save_pseudo_label_figure",
    "select",
]
