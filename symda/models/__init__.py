"""Segmentation networks (DeepLab V2 and smaller backbones), translators and discriminators."""

from symda.models.deeplabv2 import (
    BACKBONES,
    ASPPClassifier,
    DeepLabV2,
    build_deeplabv2,
    count_parameters,
    field_state_dict,
    load_backbone_weights,
    param_groups,
)
from symda.models.discriminator import (
    MIN_DISCRIMINATOR_SIZE,
    OutputDiscriminator,
    d_decisions_correct,
    gan_loss,
)
from symda.models.stargan import Discriminator, Generator, gradient_penalty

__all__ = [
    "BACKBONES",
    "ASPPClassifier",
    "DeepLabV2",
    "build_deeplabv2",
    "count_parameters",
    "field_state_dict",
    "load_backbone_weights",
    "param_groups",
    "Discriminator",
    "Generator",
    "gradient_penalty",
    "MIN_DISCRIMINATOR_SIZE",
    "OutputDiscriminator",
    "d_decisions_correct",
    "gan_loss",
]
