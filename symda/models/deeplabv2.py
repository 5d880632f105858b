"""DeepLab V2 (ResNet backbone + summed-ASPP classifier) as the UDA-segmentation field uses it.

The paper configuration (AdaptSegNet, ADVENT, BDL, DPL) is ResNet-101 with layer3 dilated by 2 and
layer4 by 4 (output stride 8), an ASPP classifier of four 3x3 convs with dilations 6/12/18/24 whose
outputs are *summed*, and a 10x learning rate on the classifier. What their code computes beyond
that, and the switches that reproduce it (``configs/gta5/`` sets both):

- ``resnet_style="caffe"``: the field's Caffe-derived ResNet puts the stride-2 of a stage's first
  Bottleneck on its 1x1 conv1 (torchvision, V1.5: on the 3x3 conv2) and its stem max-pool uses
  ``ceil_mode=True``, so a 512x1024 input gives 65x129 logits (torchvision style: 64x128). The field's
  initial weights were trained in that layout; the tensors have the same shapes either way.
- ``bn_mode="frozen_affine"``: BatchNorm's scale and shift are frozen but the model runs in train mode,
  so BN normalises with batch statistics and updates its running averages, as ``model.train()`` does
  in their code. ``"frozen"`` holds every BN in eval mode instead (running statistics, never updated);
  ``"train"`` trains BN normally (SynthCity from scratch).

Smaller backbones (ResNet-50/34/18, optionally cut after layer3) exist for CPU runs; see
``shared/reference/cpu-budget.md``.

Nothing here downloads anything: backbones are built with ``weights=None`` and
:func:`load_backbone_weights` reads only local files (an explicit path or the local torch hub cache).
"""

from __future__ import annotations

import glob
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping

import torch
import torchvision
from torch import Tensor, nn

__all__ = [
    "BACKBONES",
    "BN_MODES",
    "RESNET_STYLES",
    "ASPPClassifier",
    "DeepLabV2",
    "build_deeplabv2",
    "count_parameters",
    "field_state_dict",
    "load_backbone_weights",
    "param_groups",
]

log = logging.getLogger(__name__)

# name -> torchvision constructor. Every entry is built with weights=None (no download, ever).
BACKBONES: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
}

# Channels of layer1..layer4 outputs for planes 64/128/256/512 times the block expansion.
_LAYER_PLANES = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
_VALID_LAST_LAYERS = ("layer3", "layer4")
_VALID_OUTPUT_STRIDES = (8, 16)
RESNET_STYLES = ("torchvision", "caffe")
BN_MODES = ("train", "frozen", "frozen_affine")


class ASPPClassifier(nn.Module):
    """DeepLab V2 ASPP classifier: parallel dilated 3x3 convs whose logits are summed.

    Unlike DeepLab V3's ASPP there is no BatchNorm, no image pooling and no concatenation: each branch
    maps features straight to class logits and the branches are added. The submodule is named
    ``conv2d_list`` as in the AdaptSegNet/BDL code so their checkpoints map onto it by name.

    Args:
        in_channels: channels of the backbone features.
        num_classes: number of output classes.
        dilations: one branch per dilation; padding equals dilation so the spatial size is kept.

    Shapes: (N, in_channels, h, w) -> (N, num_classes, h, w).
    """

    def __init__(self, in_channels: int, num_classes: int, dilations: tuple[int, ...] = (6, 12, 18, 24)):
        super().__init__()
        if not dilations:
            raise ValueError("aspp_dilations must name at least one dilation, got ()")
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=d, dilation=d, bias=True)
            for d in dilations
        )
        for conv in self.conv2d_list:
            # The DeepLab V2 / AdaptSegNet initialisation: small weights so the randomly initialised
            # head starts near zero logits and does not swamp a pretrained backbone's gradients.
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


def _dilate_layer(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one in place (stride 1, dilation on every 3x3 conv).

    Why patch instead of ``replace_stride_with_dilation``: torchvision's BasicBlock (ResNet-18/34)
    raises on dilation > 1, so that switch only works for Bottleneck networks. And even there torchvision
    gives the first block of a dilated stage the *previous* dilation (1 for layer3, 2 for layer4),
    whereas DeepLab V2 dilates every block of layer3 by 2 and of layer4 by 4. Patching after construction
    gives one code path for all four backbones and the paper's exact dilations. Parameter shapes are
    unchanged, so ImageNet weights still load.
    """
    for module in layer.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.stride != (1, 1):
            # The first block's strided 3x3 conv (conv1 in BasicBlock, conv2 in Bottleneck) and its 1x1
            # downsample conv: removing the stride is what keeps the resolution.
            module.stride = (1, 1)
        if module.kernel_size == (3, 3):
            module.dilation = (dilation, dilation)
            module.padding = (dilation, dilation)


def _caffe_layout(net: torchvision.models.ResNet) -> None:
    """The field's Caffe-derived ResNet, in place: each strided Bottleneck takes its stride on the 1x1
    conv1 instead of the 3x3 conv2, and the stem max-pool rounds up (ceil_mode)."""
    net.maxpool.ceil_mode = True
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(net, name, ()):
            if block.conv2.stride != (1, 1):
                block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)


class DeepLabV2(nn.Module):
    """DeepLab V2 segmentation network on a torchvision ResNet.

    Args:
        backbone: one of :data:`BACKBONES` ("resnet18", "resnet34", "resnet50", "resnet101").
        num_classes: output classes (19 for Cityscapes train ids).
        output_stride: 8 (layer3 dilation 2, layer4 dilation 4: the paper's setting) or 16 (layer4
            dilation 2; with ``last_layer="layer3"`` no dilation at all).
        last_layer: "layer4" (the full network) or "layer3" (cut after layer3: ResNet-18 through layer3 is
            the cheap ~3M-parameter CPU model).
        aspp_dilations: dilations of the summed ASPP branches.
        aux_head: add a second ASPP classifier on an intermediate stage, as in AdaptSegNet's multi-level
            variant: on layer3 output when ``last_layer="layer4"``, on layer2 output when
            ``last_layer="layer3"`` (there is no layer4 left, so the auxiliary level moves one stage up).
        resnet_style: "torchvision" (stride on the 3x3 conv) or "caffe" (the field's layout: stride on
            the 1x1 conv, ceil-mode max-pool; Bottleneck backbones only, i.e. resnet50/resnet101).
        bn_mode: backbone BatchNorm during training: "train" (normal), "frozen" (eval mode, affine
            frozen, also after ``model.train()``) or "frozen_affine" (affine frozen, batch statistics
            in train mode: the field's code).

    ``forward(x)`` with x (N, 3, H, W) returns ``{"main": (N, num_classes, h, w)}`` with
    h = ceil(H / output_stride) for the usual sizes in torchvision style (caffe style: one more where
    the max-pool rounds up, e.g. 65x129 for 512x1024), plus ``"aux": (N, num_classes, h', w')`` when
    ``aux_head``. The logits are at feature resolution; callers upsample (bilinear) to the label size.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        num_classes: int = 19,
        output_stride: int = 8,
        last_layer: str = "layer4",
        aspp_dilations: tuple[int, ...] = (6, 12, 18, 24),
        aux_head: bool = False,
        resnet_style: str = "torchvision",
        bn_mode: str = "train",
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {sorted(BACKBONES)}")
        if output_stride not in _VALID_OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {_VALID_OUTPUT_STRIDES}, got {output_stride!r}")
        if last_layer not in _VALID_LAST_LAYERS:
            raise ValueError(f"last_layer must be one of {_VALID_LAST_LAYERS}, got {last_layer!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if resnet_style not in RESNET_STYLES:
            raise ValueError(f"resnet_style must be one of {RESNET_STYLES}, got {resnet_style!r}")
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")

        self.backbone_name = backbone
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.last_layer = last_layer
        self.aspp_dilations = tuple(aspp_dilations)
        self.resnet_style = resnet_style
        self.bn_mode = bn_mode

        net = BACKBONES[backbone](weights=None)  # weights=None: never download
        if resnet_style == "caffe":
            if not isinstance(net.layer1[0], torchvision.models.resnet.Bottleneck):
                raise ValueError(
                    f"resnet_style 'caffe' moves a Bottleneck's stride to its 1x1 conv: {backbone} has basic "
                    "blocks (no 1x1 conv); use resnet50 or resnet101, or resnet_style 'torchvision'"
                )
            _caffe_layout(net)
        # The classification head is not part of a segmentation network.
        del net.fc, net.avgpool
        if last_layer == "layer3":
            del net.layer4

        # Dilation schedule: a stage is dilated instead of strided once the output stride is reached.
        if last_layer == "layer4":
            dilations = {"layer3": 2, "layer4": 4} if output_stride == 8 else {"layer4": 2}
        else:
            dilations = {"layer3": 2} if output_stride == 8 else {}
        for name, d in dilations.items():
            _dilate_layer(getattr(net, name), d)
        self.backbone = net

        expansion = net.layer1[0].expansion
        feat_channels = _LAYER_PLANES[last_layer] * expansion
        self.aux_layer = ("layer3" if last_layer == "layer4" else "layer2") if aux_head else None
        self.classifier = ASPPClassifier(feat_channels, num_classes, self.aspp_dilations)
        self.aux_classifier: ASPPClassifier | None = None
        if self.aux_layer is not None:
            aux_channels = _LAYER_PLANES[self.aux_layer] * expansion
            self.aux_classifier = ASPPClassifier(aux_channels, num_classes, self.aspp_dilations)

        if bn_mode != "train":
            for m in self._backbone_batchnorms():
                for p in m.parameters():
                    p.requires_grad_(False)
        if bn_mode == "frozen":
            self._set_bn_eval()

    def _backbone_batchnorms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        return (m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def _set_bn_eval(self) -> None:
        for m in self._backbone_batchnorms():
            m.eval()

    def train(self, mode: bool = True) -> DeepLabV2:
        """Set train/eval mode; with bn_mode "frozen" the backbone BatchNorms stay in eval mode."""
        super().train(mode)
        if self.bn_mode == "frozen":
            self._set_bn_eval()
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: (N, 3, H, W) normalised image -> {"main": (N, C, h, w)[, "aux": (N, C, h', w')]} logits."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer1(x)
        x = b.layer2(x)
        aux_in = x if self.aux_layer == "layer2" else None
        x = b.layer3(x)
        if self.aux_layer == "layer3":
            aux_in = x
        if self.last_layer == "layer4":
            x = b.layer4(x)
        out = {"main": self.classifier(x)}
        if self.aux_classifier is not None:
            out["aux"] = self.aux_classifier(aux_in)
        return out

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone_name}, num_classes={self.num_classes}, "
            f"output_stride={self.output_stride}, last_layer={self.last_layer}, "
            f"aux_layer={self.aux_layer}, resnet_style={self.resnet_style}, bn_mode={self.bn_mode}"
        )


def build_deeplabv2(
    backbone: str,
    num_classes: int = 19,
    output_stride: int = 8,
    last_layer: str = "layer4",
    aspp_dilations: tuple[int, ...] = (6, 12, 18, 24),
    aux_head: bool = False,
    resnet_style: str = "torchvision",
    bn_mode: str = "train",
) -> DeepLabV2:
    """Build a randomly initialised :class:`DeepLabV2` (no download); see the class for arguments.

    Load pretrained weights afterwards with :func:`load_backbone_weights`.
    Raises ValueError for an unknown backbone (listing the valid ones) or an invalid stride/cut.
    """
    return DeepLabV2(
        backbone=backbone,
        num_classes=num_classes,
        output_stride=output_stride,
        last_layer=last_layer,
        aspp_dilations=tuple(aspp_dilations),
        aux_head=aux_head,
        resnet_style=resnet_style,
        bn_mode=bn_mode,
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with requires_grad if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def param_groups(model: DeepLabV2, lr: float, head_lr_mult: float = 10.0) -> list[dict]:
    """SGD parameter groups: backbone at ``lr``, classifier(s) at ``lr * head_lr_mult`` (DeepLab V2 recipe).

    Only parameters with requires_grad are included (frozen BatchNorm affines are left out). Each group
    also carries ``name`` ("backbone"/"head") and ``lr_mult`` so a poly schedule can recompute
    ``lr_mult * base_lr * (1 - it/max_it) ** 0.9`` per group. Empty groups are dropped.
    """
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head_modules = [model.classifier] + ([model.aux_classifier] if model.aux_classifier is not None else [])
    head = [p for m in head_modules for p in m.parameters() if p.requires_grad]
    groups = [
        {"name": "backbone", "params": backbone, "lr": lr, "lr_mult": 1.0},
        {"name": "head", "params": head, "lr": lr * head_lr_mult, "lr_mult": head_lr_mult},
    ]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------------------------------
# Weight loading (local files only)
# --------------------------------------------------------------------------------------------------

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_STRIP_PREFIXES = ("module.", "Scale.")


def _warn(msg: str) -> None:
    # Both channels: warnings for interactive/pytest users, logging for run logs under Ray.
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    log.warning(msg)


def _unwrap_state_dict(obj: object, path: str) -> dict[str, Tensor]:
    """Return the tensor dict inside a checkpoint (plain state dict or {"state_dict": ...}-style)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors:
            return tensors
    raise ValueError(f"{path}: not a state dict (no tensors found; got {type(obj).__name__})")


def _strip_prefixes(key: str) -> str:
    # "module." comes from DataParallel, "Scale." from the Caffe-converted DeepLab init file used by
    # AdaptSegNet/BDL (DeepLab_resnet_pretrained_init-f81d91e8.pth); either order may occur.
    changed = True
    while changed:
        changed = False
        for prefix in _STRIP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


SYMDA_FORMAT = "symda DeepLabV2 checkpoint"
FIELD_FORMAT = "the field's DeepLab V2 (AdaptSegNet/ADVENT/BDL, Caffe layout)"
TORCHVISION_FORMAT = "torchvision ImageNet ResNet"


def _map_keys(raw: dict[str, Tensor]) -> tuple[dict[str, Tensor], str, list[str]]:
    """Map checkpoint keys onto ``DeepLabV2.state_dict()`` names: (mapped, format, keys left out).

    Formats: a symda DeepLabV2 checkpoint ("backbone.*", "classifier.*"), a torchvision ImageNet ResNet
    ("conv1.weight", "layer1.0.*", "fc.*": the ImageNet classifier is left out), or the field's DeepLab
    V2 ("layer5.*" / "layer6.*" ASPP heads, usually "Scale."-prefixed). In the field's multi-level
    model (ADVENT's ResNetMulti, AdaptSegNet's multi) layer5 is the auxiliary head (on layer3) and
    layer6 the main one; in the single-level model layer5 is the main head. Backbone names are the
    same in all three (torchvision's: conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ...).
    """
    stripped = {_strip_prefixes(k): v for k, v in raw.items()}
    if any(k.startswith(("backbone.", "classifier.")) for k in stripped):
        return stripped, SYMDA_FORMAT, []

    has_l5 = any(k.startswith("layer5.") for k in stripped)
    has_l6 = any(k.startswith("layer6.") for k in stripped)
    head_map = {"layer6.": "classifier.", "layer5.": "aux_classifier." if has_l6 else "classifier."}
    mapped: dict[str, Tensor] = {}
    left_out: list[str] = []
    for key, value in stripped.items():
        if key.startswith(("fc.", "avgpool.")):
            left_out.append(key)  # ImageNet classifier: not part of a segmentation network
            continue
        for src, dst in head_map.items():
            if key.startswith(src):
                mapped[dst + key[len(src) :]] = value
                break
        else:
            mapped["backbone." + key] = value
    fmt = (
        FIELD_FORMAT if (has_l5 or has_l6 or any(k.startswith("Scale.") for k in raw)) else TORCHVISION_FORMAT
    )
    return mapped, fmt, left_out


def field_state_dict(model: DeepLabV2) -> dict[str, Tensor]:
    """The model's tensors under the field's DeepLab V2 names, e.g. to evaluate it with their code:
    backbone keys without "backbone.", the main head as layer5 (single level) or as layer6 beside the
    auxiliary layer5 (multi level). Loading the result back gives the same network."""
    heads = {
        "classifier.": "layer6." if model.aux_classifier is not None else "layer5.",
        "aux_classifier.": "layer5.",
    }
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the field's files predate it
        for src, dst in heads.items():
            if key.startswith(src):
                out[dst + key[len(src) :]] = value
                break
        else:
            out[key.removeprefix("backbone.")] = value
    return out


def _counted(key: str) -> bool:
    # num_batches_tracked is a BN bookkeeping buffer that older files (the field's, torchvision's
    # ImageNet ones) do not hold: counted on neither side, loaded where present.
    return not key.endswith("num_batches_tracked")


def _head(key: str) -> str | None:
    """ "classifier" / "aux_classifier" for a head tensor's key, None for a backbone one."""
    head = key.split(".", 1)[0]
    return head if head in ("classifier", "aux_classifier") else None


def _examples(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _load_file_into(model: DeepLabV2, path: str) -> str:
    """Load a local weights file into ``model``, strictly; returns a one-line description.

    Every tensor of the file must land on a tensor of the model with its shape, and every backbone
    tensor of the model must come from the file; the exceptions are named: the ImageNet classifier
    (fc), layer4 of a full ResNet file for a network cut after layer3, and a head whose class count
    differs from the model's (the field's init file carries one: AdaptSegNet drops it the same way).
    Anything else is a ValueError naming the keys at fault, and the model is left untouched.
    """
    # Data, never code: a pickle naming other objects is refused (preflight names it for the user).
    obj = torch.load(path, map_location="cpu", weights_only=True)
    raw = _unwrap_state_dict(obj, path)
    mapped, fmt, left_out = _map_keys(raw)
    own = model.state_dict()

    if model.last_layer == "layer3":
        cut = [k for k in mapped if k.startswith("backbone.layer4.")]
        left_out += cut
        mapped = {k: v for k, v in mapped.items() if k not in cut}
    heads_other_classes = sorted({
        _head(k) for k, v in mapped.items()
        if _head(k) and k in own and v.shape != own[k].shape and k.endswith(".weight")
        and v.shape[1:] == own[k].shape[1:]  # same input channels and kernel: only the classes differ
    })  # fmt: skip
    for head in heads_other_classes:
        dropped = [k for k in mapped if _head(k) == head]
        left_out += dropped
        mapped = {k: v for k, v in mapped.items() if k not in dropped}

    unknown = [k for k in mapped if k not in own]
    wrong_shape = [f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})" for k, v in mapped.items()
                   if k in own and v.shape != own[k].shape]  # fmt: skip
    backbone_own = [k for k in own if k.startswith("backbone.") and _counted(k)]
    missing = [k for k in backbone_own if k not in mapped]
    if unknown or wrong_shape or missing:
        problems = []
        if wrong_shape:
            problems.append(f"{len(wrong_shape)} with another shape: {_examples(wrong_shape)}")
        if unknown:
            problems.append(f"{len(unknown)} the model does not have: {_examples(unknown)}")
        if missing:
            problems.append(
                f"{len(missing)} backbone tensors of the model missing from the file: {_examples(missing)}"
            )
        raise ValueError(
            f"{path}: does not fit a {model.backbone_name} DeepLabV2 (last_layer {model.last_layer}, aux_head "
            f"{model.aux_classifier is not None}; file read as {fmt}): "
            + "; ".join(problems)
            + ". Wrong file for this backbone, or model.* settings that differ from the file's network?"
        )
    _warn_on_layout(model, fmt, path)
    with torch.no_grad():
        for key, value in mapped.items():
            own[key].copy_(value.to(own[key].dtype))

    backbone_loaded = [k for k in mapped if k.startswith("backbone.") and _counted(k)]
    head_loaded = [k for k in mapped if _head(k)]
    desc = f"{fmt} from {path}: backbone {len(backbone_loaded)}/{len(backbone_own)} tensors, head {len(head_loaded)}"
    if heads_other_classes:
        desc += f"; the file's {' and '.join(heads_other_classes)} (another class count) left out"
    if left_out:
        log.info(
            "load_backbone_weights left out %d tensors of %s: %s", len(left_out), path, _examples(left_out)
        )
    log.info("load_backbone_weights: %s", desc)
    return desc


def _warn_on_layout(model: DeepLabV2, fmt: str, path: str) -> None:
    """The field's files were trained in the Caffe layout, torchvision's in its own: loaded into the
    other layout the tensors fit (same shapes) but the network computes another function."""
    expected = {FIELD_FORMAT: "caffe", TORCHVISION_FORMAT: "torchvision"}.get(fmt)
    if expected and model.resnet_style != expected:
        _warn(
            f"{path}: {fmt} weights in a model.resnet_style={model.resnet_style} network: the tensors fit, but "
            f"the stride sits on another conv than the one they were trained with; set model.resnet_style={expected}"
        )


def _random_init_or_raise(model: DeepLabV2, looked_at: str, allow_random_init: bool) -> str:
    msg = (
        f"pretrained weights for {model.backbone_name} not found: looked at {looked_at}. "
        "Nothing is downloaded; put the file there or set weights to a local path."
    )
    if not allow_random_init:
        raise FileNotFoundError(
            f"{msg} To train from random initialisation set model.allow_random_init=true."
        )
    _warn(f"{msg} CONTINUING FROM RANDOM INITIALISATION because model.allow_random_init is true.")
    return f"random init ({model.backbone_name}; no weights at {looked_at})"


def load_backbone_weights(model: DeepLabV2, weights: str | None, allow_random_init: bool) -> str:
    """Load pretrained weights into ``model`` in place from a local source; never downloads.

    Args:
        model: the network to fill.
        weights: ``"none"`` = keep random init silently (an explicit choice); ``None`` = not configured:
            warn and keep random init if ``allow_random_init``, else raise; ``"torch_cache"`` = the
            torchvision ImageNet file of this backbone in ``torch.hub.get_dir()/checkpoints/``
            (``resnet101-*.pth`` etc.); any other string = a local file: a torchvision ResNet state
            dict, a symda DeepLabV2 checkpoint, or the field's DeepLab V2 file (AdaptSegNet/ADVENT/BDL's
            ``DeepLab_resnet_pretrained_*.pth``: ``Scale.``/``module.`` prefixes stripped, ``layer5``/
            ``layer6`` heads mapped to the classifiers). Loaded strictly (see ``_load_file_into``); the
            field's files are in the Caffe layout and want ``resnet_style="caffe"`` (warned otherwise).
        allow_random_init: what to do when torch_cache has no file or weights is None (warn and continue
            vs FileNotFoundError). A local file that does not exist is always an error.

    Returns:
        A short description of what was loaded (for the run log / result record).

    Raises:
        FileNotFoundError: weights missing and not ``allow_random_init`` (names the path and the
            ``model.allow_random_init`` switch).
        ValueError: the file does not fit this network: a tensor with another shape, a key the model
            does not have, or a backbone tensor of the model the file lacks (each named).
    """
    if isinstance(weights, str) and weights.strip().lower() == "none":
        return f"random init ({model.backbone_name}; weights='none')"
    if weights is None:
        return _random_init_or_raise(
            model, "<no weights configured (model.weights is null)>", allow_random_init
        )

    if weights == "torch_cache":
        cache_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
        pattern = os.path.join(cache_dir, f"{model.backbone_name}-*.pth")
        found = sorted(glob.glob(pattern))
        if not found:
            return _random_init_or_raise(model, pattern, allow_random_init)
        if len(found) > 1:
            log.info("several cached files match %s, using %s", pattern, found[-1])
        return _load_file_into(model, found[-1])

    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        # A file named explicitly and absent is a typo or a missing copy, never a reason to train from
        # random weights (model.allow_random_init covers torch_cache and null only).
        raise FileNotFoundError(missing_weights_message(path))
    return _load_file_into(model, path)


def missing_weights_message(path: str) -> str:
    """What to say when model.weights names a file that is not there (also said before a run starts)."""
    return (
        f"model.weights: {path} not found (nothing is downloaded); fix the path, or set "
        "model.weights=none to train from random initialisation"
    )
