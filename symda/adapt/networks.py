"""Build the configured networks from their config sections."""

from __future__ import annotations

import logging
from pathlib import Path

from symda.config import ModelConfig
from symda.data.labels import NUM_CLASSES
from symda.models.deeplabv2 import DeepLabV2, build_deeplabv2, load_backbone_weights

log = logging.getLogger(__name__)


def build_segmenter(cfg: ModelConfig, num_classes: int = NUM_CLASSES, load_weights: bool = True) -> DeepLabV2:
    """DeepLab V2 as configured; backbone weights from cfg.weights unless load_weights is False
    (e.g. when a checkpoint will overwrite them anyway)."""
    model = build_deeplabv2(
        backbone=cfg.backbone,
        num_classes=num_classes,
        output_stride=cfg.output_stride,
        last_layer=cfg.last_layer,
        aspp_dilations=tuple(cfg.aspp_dilations),
        aux_head=cfg.aux_head,
        resnet_style=cfg.resnet_style,
        bn_mode=cfg.bn_mode,
    )
    if load_weights:
        log.info("backbone weights: %s", load_backbone_weights(model, cfg.weights, cfg.allow_random_init))
    return model


def load_segmenter(cfg: ModelConfig, checkpoint: Path, num_classes: int = NUM_CLASSES) -> DeepLabV2:
    """The configured network with the weights of a checkpoint ({"model": state} or a bare state dict),
    in eval mode."""
    from symda.checkpoints import load_model_state, read_checkpoint, segmenter_state

    blob = read_checkpoint(checkpoint, "segmenter checkpoint")
    model = build_segmenter(cfg, num_classes, load_weights=False)
    settings = (
        f"model.backbone={cfg.backbone} model.last_layer={cfg.last_layer} model.aux_head={cfg.aux_head} "
        f"model.resnet_style={cfg.resnet_style}"
    )
    load_model_state(model, segmenter_state(blob, checkpoint), checkpoint, settings)
    return model.eval()
