"""Stage 1: train the StarGAN translator and translate datasets into the same on-disk layout.

`train_translator` writes translator.pt; `translate_root` turns a dataset root into its translated
copy (S' = G(S, target), T' = G(T, source), V' = G(V, source)) that the usual loaders read.
"""

from symda.translate.apply import (
    TranslationExistsError,
    checkpoint_digest,
    load_generator,
    translate_dataset,
    translate_root,
)
from symda.translate.train import (
    METRIC_KEYS,
    SOURCE,
    TARGET,
    build_translator,
    from_tanh_space,
    lr_factor,
    to_tanh_space,
    train_translator,
)

__all__ = [
    "METRIC_KEYS",
    "SOURCE",
    "TARGET",
    "TranslationExistsError",
    "build_translator",
    "checkpoint_digest",
    "from_tanh_space",
    "load_generator",
    "lr_factor",
    "to_tanh_space",
    "train_translator",
    "translate_dataset",
    "translate_root",
]
