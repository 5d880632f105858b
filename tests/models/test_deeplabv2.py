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
    field_state_dict,
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


def test_frozen_bn_keeps_buffers_and_survives_train() -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16, bn_mode="frozen")
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


def test_frozen_affine_bn_trains_on_batch_statistics_like_the_fields_code() -> None:
    # AdaptSegNet/ADVENT/BDL: requires_grad False on BN's weight and bias, but model.train(), so BN
    # normalises each batch with its own statistics and updates its running averages.
    model = build_deeplabv2("resnet18", last_layer="layer3", bn_mode="frozen_affine").train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    rm = model.backbone.bn1.running_mean.clone()
    model(_x(2))["main"].mean().backward()
    assert not torch.equal(rm, model.backbone.bn1.running_mean)
    assert all(p.grad is None for m in bns for p in m.parameters())
    assert not {id(p) for m in bns for p in m.parameters()} & {
        id(p) for g in param_groups(model, 1e-3) for p in g["params"]
    }
    assert all(not m.training for m in model.eval().backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="bn_mode"):
        build_deeplabv2("resnet18", bn_mode="freeze")


@pytest.mark.parametrize("bn_mode", ["train", "frozen", "frozen_affine"])
@pytest.mark.parametrize("aux_head", [False, True])
def test_param_groups_cover_each_trainable_once(bn_mode: str, aux_head: bool) -> None:
    model = build_deeplabv2("resnet18", last_layer="layer3", bn_mode=bn_mode, aux_head=aux_head)
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


def test_caffe_style_strides_the_1x1_conv_and_rounds_the_max_pool_up() -> None:
    caffe = build_deeplabv2("resnet50", resnet_style="caffe")
    tv = build_deeplabv2("resnet50")
    assert caffe.backbone.maxpool.ceil_mode and not tv.backbone.maxpool.ceil_mode
    assert caffe.backbone.layer2[0].conv1.stride == (2, 2) and caffe.backbone.layer2[0].conv2.stride == (1, 1)
    assert tv.backbone.layer2[0].conv1.stride == (1, 1) and tv.backbone.layer2[0].conv2.stride == (2, 2)
    for layer in ("layer3", "layer4"):  # dilated, never strided, in either style
        assert all(
            c.stride == (1, 1)
            for c in getattr(caffe.backbone, layer).modules()
            if isinstance(c, torch.nn.Conv2d)
        )
    assert [t.shape for t in caffe.state_dict().values()] == [t.shape for t in tv.state_dict().values()]
    with pytest.raises(ValueError, match="resnet50 or resnet101"):
        build_deeplabv2("resnet18", resnet_style="caffe")


@pytest.mark.parametrize(
    ("style", "main", "aux"), [("caffe", (65, 129), (65, 129)), ("torchvision", (64, 128), (64, 128))]
)
def test_paper_network_output_size_at_512x1024(style: str, main: tuple, aux: tuple) -> None:
    # ResNet-101 at the paper's target size, on the meta device (shapes only, no arithmetic): the
    # field's network gives 65x129 logits (AdaptSegNet/ADVENT/BDL), torchvision's layout 64x128.
    with torch.device("meta"):
        model = build_deeplabv2(
            "resnet101", aux_head=True, resnet_style=style, bn_mode="frozen_affine"
        ).eval()
        out = model(torch.empty(1, 3, 512, 1024))
    assert tuple(out["main"].shape[-2:]) == main and tuple(out["aux"].shape[-2:]) == aux
    assert count_parameters(model) == 44_601_560  # the field's multi-level count: the layout moves no weight


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
    n = sum(1 for k in model.backbone.state_dict() if not k.endswith("num_batches_tracked"))
    assert "torchvision" in desc and str(path) in desc and f"backbone {n}/{n} tensors" in desc
    _assert_backbone_equals(model, sd)
    torch.testing.assert_close(model.classifier.conv2d_list[0].weight, head_before)
    # The cut model takes the same file: layer4 and fc are simply not used.
    cut = build_deeplabv2("resnet18", last_layer="layer3", output_stride=16)
    load_backbone_weights(cut, str(path), allow_random_init=False)
    _assert_backbone_equals(cut, {k: v for k, v in sd.items()})


def _field_init_file(tmp_path, backbone: str = "resnet50", head_classes: int = 21) -> tuple[str, dict]:
    """A file laid out like the field's DeepLab init file (DeepLab_resnet_pretrained_init-f81d91e8.pth):
    "Scale."-prefixed torchvision-named backbone tensors, no num_batches_tracked, no fc, and a
    single-level ASPP head "layer5" for another class count; every tensor distinct."""
    torch.manual_seed(7)
    src = torchvision.models.get_model(backbone, weights=None).state_dict()
    sd = {k: torch.randn_like(v.float()) if v.is_floating_point() else v
          for k, v in src.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}  # fmt: skip
    sd.update({f"layer5.conv2d_list.{i}.weight": torch.randn(head_classes, 2048, 3, 3) for i in range(4)})
    sd.update({f"layer5.conv2d_list.{i}.bias": torch.randn(head_classes) for i in range(4)})
    path = tmp_path / "DeepLab_resnet_pretrained_init-f81d91e8.pth"
    torch.save({"Scale." + k: v for k, v in sd.items()}, path)
    return str(path), sd


def test_the_fields_init_file_lands_tensor_by_tensor_and_its_voc_head_is_left_out(tmp_path) -> None:
    path, sd = _field_init_file(tmp_path)
    model = build_deeplabv2(
        "resnet50", num_classes=19, aux_head=True, resnet_style="caffe", bn_mode="frozen_affine"
    )
    head_before = model.classifier.conv2d_list[0].weight.clone()
    desc = load_backbone_weights(model, path, allow_random_init=False)
    own = model.backbone.state_dict()
    n = sum(1 for k in own if not k.endswith("num_batches_tracked"))
    assert f"backbone {n}/{n} tensors" in desc and "classifier (another class count) left out" in desc
    for k, v in sd.items():
        if not k.startswith("layer5."):
            torch.testing.assert_close(own[k], v, rtol=0, atol=0, msg=k)
    torch.testing.assert_close(model.classifier.conv2d_list[0].weight, head_before)


def test_the_fields_multi_level_checkpoint_maps_layer5_to_aux_and_layer6_to_main(tmp_path) -> None:
    src = build_deeplabv2("resnet50", num_classes=19, aux_head=True, resnet_style="caffe")
    field = field_state_dict(src)
    assert "layer6.conv2d_list.0.weight" in field and "layer5.conv2d_list.3.bias" in field
    assert "conv1.weight" in field and not any(k.endswith("num_batches_tracked") for k in field)
    path = tmp_path / "GTA2Cityscapes_multi.pth"
    torch.save({"module." + k: v for k, v in field.items()}, path)
    dst = build_deeplabv2("resnet50", num_classes=19, aux_head=True, resnet_style="caffe")
    desc = load_backbone_weights(dst, str(path), allow_random_init=False)
    assert "the field's DeepLab V2" in desc and "head 16" in desc
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(dst.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_loading_is_strict_and_names_the_keys_at_fault(tmp_path) -> None:
    path, sd = _field_init_file(tmp_path)
    model = build_deeplabv2("resnet50", resnet_style="caffe")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    broken = {
        "unknown key": {**sd, "layer2.0.conv4.weight": torch.zeros(1)},
        "missing key": {k: v for k, v in sd.items() if k != "layer3.5.bn2.running_var"},
        "wrong shape": {**sd, "layer1.0.conv2.weight": torch.zeros(64, 64, 1, 1)},
    }
    expected = {"unknown key": "layer2.0.conv4.weight", "missing key": "backbone.layer3.5.bn2.running_var",
                "wrong shape": "backbone.layer1.0.conv2.weight (64, 64, 1, 1)"}  # fmt: skip
    for what, state in broken.items():
        file = tmp_path / f"{what}.pth"
        torch.save({"Scale." + k: v for k, v in state.items()}, file)
        with pytest.raises(ValueError) as err:
            load_backbone_weights(model, str(file), allow_random_init=True)
        assert str(file) in str(err.value) and expected[what] in str(err.value), what
    for k, v in model.state_dict().items():  # a refused file changes nothing
        assert torch.equal(v, before[k]), k


def test_a_layout_mismatch_is_loud(tmp_path) -> None:
    path, _ = _field_init_file(tmp_path)
    with pytest.warns(RuntimeWarning, match="set model.resnet_style=caffe"):
        load_backbone_weights(build_deeplabv2("resnet50"), path, allow_random_init=False)
    tv = tmp_path / "resnet50-0676ba61.pth"
    torch.save(_tv_state("resnet50"), tv)
    with pytest.warns(RuntimeWarning, match="set model.resnet_style=torchvision"):
        load_backbone_weights(
            build_deeplabv2("resnet50", resnet_style="caffe"), str(tv), allow_random_init=False
        )


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
    with pytest.raises(ValueError, match="does not fit a resnet18 DeepLabV2.*with another shape"):
        load_backbone_weights(model, str(path), allow_random_init=True)
    torch.save({"foo.bar": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="the model does not have: backbone.foo.bar"):
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
