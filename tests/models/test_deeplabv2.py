"""Invariant tests for symda.models.deeplabv2 on tiny CPU inputs (no weights are ever downloaded)."""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
import torchvision

from symda.models import (
    BACKBONES,
    DeepLabV2,
    build_deeplabv2,
    count_parameters,
    load_backbone_weights,
    param_groups,
)

H, W = 33, 65  # odd sizes catch off-by-one padding/stride mistakes


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _x(n: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, H, W)


def _expected_hw(stride: int) -> tuple[int, int]:
    # conv1 (s2, p3, k7), maxpool (s2, p1, k3) and each strided 3x3 conv (p1) all give ceil(size / 2).
    return math.ceil(H / stride), math.ceil(W / stride)


CONFIGS = [
    (backbone, last_layer, os_)
    for backbone in BACKBONES
    for last_layer in ("layer4", "layer3")
    for os_ in (8, 16)
    # resnet101 cut after layer3 is not a configuration anyone uses; keep the suite fast.
    if not (backbone == "resnet101" and last_layer == "layer3")
]


@pytest.mark.parametrize(("backbone", "last_layer", "output_stride"), CONFIGS)
def test_output_shape_and_finite(backbone: str, last_layer: str, output_stride: int) -> None:
    model = build_deeplabv2(backbone, num_classes=7, output_stride=output_stride, last_layer=last_layer)
    model.eval()
    with torch.no_grad():
        out = model(_x(2))
    assert set(out) == {"main"}
    assert out["main"].shape == (2, 7, *_expected_hw(output_stride))
    assert torch.isfinite(out["main"]).all()


SMALL = [
    ("resnet18", "layer3", 16),
    ("resnet18", "layer3", 8),
    ("resnet18", "layer4", 8),
    ("resnet34", "layer4", 16),
]


@pytest.mark.parametrize(("backbone", "last_layer", "output_stride"), SMALL)
def test_gradient_reaches_first_conv(backbone: str, last_layer: str, output_stride: int) -> None:
    model = build_deeplabv2(backbone, num_classes=5, output_stride=output_stride, last_layer=last_layer)
    model.train()
    out = model(_x(2))["main"]
    out.square().mean().backward()
    g = model.backbone.conv1.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    for conv in model.classifier.conv2d_list:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("backbone", "last_layer", "output_stride"), SMALL[:2])
def test_eval_is_deterministic(backbone: str, last_layer: str, output_stride: int) -> None:
    model = build_deeplabv2(backbone, output_stride=output_stride, last_layer=last_layer).eval()
    x = _x()
    with torch.no_grad():
        a, b = model(x)["main"], model(x)["main"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dilations_match_paper_on_every_block() -> None:
    model = build_deeplabv2("resnet18", output_stride=8)
    for name, d in (("layer3", 2), ("layer4", 4)):
        for block in getattr(model.backbone, name):
            for conv in (block.conv1, block.conv2):
                assert conv.dilation == (d, d) and conv.padding == (d, d) and conv.stride == (1, 1)
    model16 = build_deeplabv2("resnet50", output_stride=16)
    assert model16.backbone.layer3[0].conv2.stride == (2, 2)
    assert all(b.conv2.dilation == (2, 2) for b in model16.backbone.layer4)


def test_aspp_is_summed_and_initialised() -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", aspp_dilations=(6, 12, 18, 24))
    convs = model.classifier.conv2d_list
    assert [c.dilation[0] for c in convs] == [6, 12, 18, 24]
    for c in convs:
        assert torch.all(c.bias == 0)
        assert c.weight.std().item() == pytest.approx(0.01, rel=0.1)
    feats = torch.randn(1, convs[0].in_channels, 5, 9)
    expected = sum(c(feats) for c in convs)
    torch.testing.assert_close(model.classifier(feats), expected)


@pytest.mark.parametrize(
    ("last_layer", "output_stride", "aux_stride"), [("layer4", 8, 8), ("layer4", 16, 16), ("layer3", 16, 8)]
)
def test_aux_head_shape(last_layer: str, output_stride: int, aux_stride: int) -> None:
    model = build_deeplabv2(
        "resnet18", num_classes=4, output_stride=output_stride, last_layer=last_layer, aux_head=True
    ).eval()
    with torch.no_grad():
        out = model(_x())
    assert set(out) == {"main", "aux"}
    assert out["main"].shape == (1, 4, *_expected_hw(output_stride))
    assert out["aux"].shape == (1, 4, *_expected_hw(aux_stride))
    expected_in = 256 if last_layer == "layer4" else 128  # layer3 / layer2 channels of ResNet-18
    assert model.aux_classifier.conv2d_list[0].in_channels == expected_in


def test_unknown_backbone_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="resnet101"):
        build_deeplabv2("vgg16")
    with pytest.raises(ValueError, match="output_stride"):
        build_deeplabv2("resnet18", output_stride=32)
    with pytest.raises(ValueError, match="last_layer"):
        build_deeplabv2("resnet18", last_layer="layer2")


def test_cheap_model_size() -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16)
    assert 2.5e6 < count_parameters(model) < 3.5e6


def test_freeze_bn_keeps_buffers_and_survives_train() -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16, freeze_bn=True)
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert model.classifier.training and model.backbone.layer1[0].conv1.weight.requires_grad
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model(_x(2))["main"].mean().backward()
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # Without freezing, a train-mode forward does move the running statistics.
    free = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16).train()
    rm = free.backbone.bn1.running_mean.clone()
    free(_x(2))
    assert not torch.equal(rm, free.backbone.bn1.running_mean)


@pytest.mark.parametrize("freeze_bn", [False, True])
@pytest.mark.parametrize("aux_head", [False, True])
def test_param_groups_cover_each_trainable_once(freeze_bn: bool, aux_head: bool) -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", freeze_bn=freeze_bn, aux_head=aux_head)
    groups = param_groups(model, lr=2.5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == pytest.approx(2.5e-4)
    assert by_name["head"]["lr"] == pytest.approx(2.5e-3)
    head_ids = {
        id(p) for g in [model.classifier, model.aux_classifier] if g is not None for p in g.parameters()
    }
    assert {id(p) for p in by_name["head"]["params"]} == head_ids
    torch.optim.SGD(groups, lr=2.5e-4, momentum=0.9)  # extra keys are accepted by torch optimisers


def _tv_state(backbone: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return torchvision.models.get_model(backbone, weights=None).state_dict()


def _assert_backbone_equals(model: DeepLabV2, sd: dict[str, torch.Tensor]) -> None:
    own = model.backbone.state_dict()
    assert own, "empty backbone"
    for k, v in own.items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0, msg=k)


def test_load_torchvision_state_dict_restores_backbone(tmp_path) -> None:
    sd = _tv_state("resnet18")
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(sd, path)
    model = build_deeplabv2("resnet18", output_stride=8)
    head_before = model.classifier.conv2d_list[0].weight.clone()
    desc = load_backbone_weights(model, str(path), allow_random_init=False)
    assert "torchvision" in desc and str(path) in desc and "0 backbone missing" in desc
    _assert_backbone_equals(model, sd)
    torch.testing.assert_close(model.classifier.conv2d_list[0].weight, head_before)
    # The cut model takes the same file: layer4 and fc are simply not used.
    cut = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16)
    load_backbone_weights(cut, str(path), allow_random_init=False)
    _assert_backbone_equals(cut, {k: v for k, v in sd.items()})


def test_load_scale_prefixed_caffe_keys(tmp_path) -> None:
    sd = _tv_state("resnet18")
    src = build_deeplabv2("resnet18", num_classes=19)
    head = {
        f"layer5.conv2d_list.{i}.{n}": t
        for i, c in enumerate(src.classifier.conv2d_list)
        for n, t in c.state_dict().items()
    }
    caffe = {"Scale." + k: v for k, v in sd.items() if not k.startswith("fc.")}
    caffe.update({"Scale." + k: v for k, v in head.items()})
    caffe["Scale.layer5.conv2d_list.0.weight"] = torch.randn(21, 512, 3, 3)  # VOC head: shape mismatch
    path = tmp_path / "DeepLab_resnet_pretrained_init-f81d91e8.pth"
    torch.save({"state_dict": caffe}, path)
    model = build_deeplabv2("resnet18", num_classes=19)
    desc = load_backbone_weights(model, str(path), allow_random_init=False)
    assert "Caffe" in desc and "1 shape-mismatched" in desc
    _assert_backbone_equals(model, sd)
    torch.testing.assert_close(model.classifier.conv2d_list[1].weight, head["layer5.conv2d_list.1.weight"])


def test_load_module_prefixed_full_checkpoint(tmp_path) -> None:
    src = build_deeplabv2("resnet18", last_layer="layer3", aux_head=True)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    dst = build_deeplabv2("resnet18", last_layer="layer3", aux_head=True)
    desc = load_backbone_weights(dst, str(path), allow_random_init=False)
    assert "symda" in desc
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_wrong_file_fails(tmp_path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(_tv_state("resnet50"), path)
    model = build_deeplabv2("resnet18", last_layer="layer3")
    with pytest.raises(ValueError, match="does not fit"):
        load_backbone_weights(model, str(path), allow_random_init=True)
    torch.save({"foo.bar": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="0 backbone tensors match"):
        load_backbone_weights(model, str(path), allow_random_init=True)


def test_a_missing_named_file_is_an_error_even_with_random_init_allowed(tmp_path) -> None:
    # A path in model.weights that is not there is a typo: never a silent fall-back to random weights.
    model = build_deeplabv2("resnet18", last_layer="layer3")
    path = str(tmp_path / "nope" / "resnet18.pth")
    for allow in (False, True):
        with pytest.raises(FileNotFoundError) as err:
            load_backbone_weights(model, path, allow_random_init=allow)
        assert path in str(err.value) and "model.weights=none" in str(err.value)


def test_none_is_silent_and_null_is_loud() -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "random init" in load_backbone_weights(model, "none", allow_random_init=False)
    with pytest.raises(FileNotFoundError, match="allow_random_init"):
        load_backbone_weights(model, None, allow_random_init=False)
    with pytest.warns(RuntimeWarning):
        load_backbone_weights(model, None, allow_random_init=True)


def test_torch_cache_lookup_never_downloads(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = build_deeplabv2("resnet18", last_layer="layer3")
    with pytest.raises(FileNotFoundError, match=r"resnet18-\*\.pth"):
        load_backbone_weights(model, "torch_cache", allow_random_init=False)
    os.makedirs(tmp_path / "checkpoints")
    # A resnet101 file must not be picked for resnet18 (glob "resnet18-*" is exact on the name).
    torch.save({"x": torch.zeros(1)}, tmp_path / "checkpoints" / "resnet101-63fe2227.pth")
    sd = _tv_state("resnet18")
    torch.save(sd, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    desc = load_backbone_weights(model, "torch_cache", allow_random_init=False)
    assert "resnet18-f37072fd.pth" in desc
    _assert_backbone_equals(model, sd)
