"""AdaptSegNet's output discriminator and the GAN losses, on tiny CPU inputs."""

from __future__ import annotations

import math

import pytest
import torch

from symda.models import MIN_DISCRIMINATOR_SIZE, OutputDiscriminator, d_decisions_correct, gan_loss


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _probs(n: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, c, h, w), dim=1)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (32, 64), (63, 97), (64, 128)])
def test_output_shape_for_several_sizes(h, w):
    d = OutputDiscriminator(num_classes=19, channels=8)
    assert d(_probs(2, 19, h, w)).shape == (2, 1, h // 32, w // 32)


def test_layout_is_adaptsegnets():
    d = OutputDiscriminator(num_classes=19, channels=64)
    convs = [d.conv1, d.conv2, d.conv3, d.conv4, d.classifier]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert d.leaky_relu.negative_slope == 0.2


def test_too_small_input_is_refused_with_its_size():
    d = OutputDiscriminator(num_classes=5, channels=4)
    with pytest.raises(ValueError, match=f"at least {MIN_DISCRIMINATOR_SIZE}.*got 24x48"):
        d(_probs(1, 5, 24, 48))


def test_gradients_reach_input_and_every_parameter():
    d = OutputDiscriminator(num_classes=19, channels=8)
    x = _probs(1, 19, 32, 64).requires_grad_(True)
    gan_loss(d(x), is_source=True).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_bce_loss_hand_cases():
    zero = torch.zeros(2, 1, 3, 4)
    assert gan_loss(zero, True, "bce").item() == pytest.approx(math.log(2))
    assert gan_loss(zero, False, "bce").item() == pytest.approx(math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    assert gan_loss(big, True, "bce").item() == pytest.approx(0.0, abs=1e-6)
    assert gan_loss(big, False, "bce").item() == pytest.approx(20.0, rel=1e-6)
    # Mixed patches: the mean over patches of -log sigmoid(x).
    x = torch.tensor([[[[0.0, math.log(3.0)]]]])  # sigmoid = 1/2, 3/4
    assert gan_loss(x, True, "bce").item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_lsgan_loss_hand_cases():
    x = torch.tensor([[[[0.0, 1.0, 3.0]]]])
    assert gan_loss(x, True, "lsgan").item() == pytest.approx((1 + 0 + 4) / 3)
    assert gan_loss(x, False, "lsgan").item() == pytest.approx((0 + 1 + 9) / 3)


def test_unknown_loss_kind_is_refused():
    with pytest.raises(ValueError, match="'wgan'"):
        gan_loss(torch.zeros(1, 1, 1, 1), True, "wgan")


def test_decisions_use_each_losss_boundary():
    x = torch.tensor([[[[-1.0, 0.3, 0.7]]]])
    assert d_decisions_correct(x, True, "bce").flatten().tolist() == [False, True, True]
    assert d_decisions_correct(x, False, "bce").flatten().tolist() == [True, False, False]
    assert d_decisions_correct(x, True, "lsgan").flatten().tolist() == [False, False, True]
