"""The supervised segmentation loop (source-only and oracle): `train_segmenter` without adaptation inputs.

The loop itself lives in `symda.adapt.loop`, which also covers adversarial adaptation and self-training;
this module keeps the names existing callers import from here.
"""

from symda.adapt.loop import (
    AUX_LOSS_WEIGHT,
    Report,
    make_optimizer,
    poly_lr,
    segmentation_loss,
    train_segmenter,
)

__all__ = ["AUX_LOSS_WEIGHT", "Report", "make_optimizer", "poly_lr", "segmentation_loss", "train_segmenter"]
