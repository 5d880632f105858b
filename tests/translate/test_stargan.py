import numpy as np
import pytest
import torch

from symda.config import TranslateConfig
from symda.data.transforms import normalize
from symda.models import Discriminator, Generator, gradient_penalty
from symda.translate.train import d_step, from_tanh_space, g_step, lr_factor, to_tanh_space


@pytest.mark.parametrize("size", [(16, 32), (32, 16), (20, 20), (17, 33), (30, 50), (5, 7)])
def test_generator_keeps_any_size(size):
    torch.manual_seed(0)
    G = Generator(conv_dim=8, repeat_num=1)
    x = torch.rand(2, 3, *size) * 2 - 1
    for mode in (G.train, G.eval):
        mode()
        out = G(x, torch.tensor([0, 1]))
        assert out.shape == x.shape
        assert out.abs().max() <= 1


def test_generator_uses_the_domain_code_and_checks_it():
    torch.manual_seed(0)
    G = Generator(8, 1)
    x = torch.rand(1, 3, 16, 32) * 2 - 1
    assert not torch.allclose(G(x, torch.tensor([0])), G(x, torch.tensor([1])))
    with pytest.raises(ValueError, match="domain ids"):
        G(x, torch.tensor([0, 1]))


def test_instance_norm_uses_instance_stats_in_eval_and_tracks_running_stats_in_train():
    torch.manual_seed(0)
    G = Generator(8, 1)
    x = torch.rand(2, 3, 16, 32) * 2 - 1
    c = torch.tensor([1, 0])
    norm = G.main[1]
    before = norm.running_mean.clone()
    with torch.no_grad():
        train_out = G.train()(x, c)
    assert not torch.equal(norm.running_mean, before)  # buffers kept and updated, as in StarGAN
    after = norm.running_mean.clone()
    with torch.no_grad():
        eval_out = G.eval()(x, c)
    assert torch.equal(norm.running_mean, after)
    torch.testing.assert_close(eval_out, train_out)  # eval() is the training-time behaviour
    assert {"running_mean", "running_var", "num_batches_tracked"} <= {
        k.split(".")[-1] for k in G.state_dict()
    }


@pytest.mark.parametrize(("size", "repeat"), [((16, 32), 3), ((32, 32), 4), ((24, 40), 3), ((19, 37), 2)])
def test_discriminator_shapes_for_any_crop(size, repeat):
    D = Discriminator(conv_dim=8, repeat_num=repeat)
    src, cls = D(torch.randn(3, 3, *size))
    assert src.shape == (3, 1, size[0] // 2**repeat, size[1] // 2**repeat)
    assert cls.shape == (3, 2)


def test_discriminator_rejects_too_small_input():
    with pytest.raises(ValueError, match="smaller than"):
        Discriminator(8, 4)(torch.randn(1, 3, 8, 32))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    cfg = TranslateConfig(g_conv_dim=8, g_repeat_num=1, d_conv_dim=8, d_repeat_num=3)
    G, D = Generator(8, 1), Discriminator(8, 3)
    x = torch.rand(4, 3, 16, 32) * 2 - 1
    c = torch.tensor([0, 0, 1, 1])
    d_loss, parts = d_step(G, D, x, c, cfg, torch.rand(4, 1, 1, 1))
    assert parts.shape == (7,) and torch.isfinite(parts).all()
    d_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())  # the critic step does not train G
    D.zero_grad()
    g_loss, parts = g_step(G, D, x, c, cfg)
    assert parts.shape == (4,)
    g_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


def test_gradient_penalty_of_a_linear_critic_is_exact():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    x_hat = torch.randn(6, 3, 4, 5, dtype=torch.float64, requires_grad=True)

    def critic(x):
        return (w * x).flatten(1).sum(1)  # D(x) = sum(w * x): the gradient is w for every sample

    expected = (w.norm() - 1) ** 2
    gp = gradient_penalty(critic(x_hat), x_hat)
    torch.testing.assert_close(gp, expected)
    torch.testing.assert_close(gradient_penalty(critic, x_hat.detach()), expected)
    # The penalty is differentiable with respect to the critic (create_graph): d/dw = 2(|w|-1) w/|w|.
    (grad_w,) = torch.autograd.grad(gp, w)
    torch.testing.assert_close(grad_w, 2 * (w.norm() - 1) * w / w.norm())


def test_gradient_penalty_is_per_sample():
    # Two samples whose critic gradients have norms 2 and 0: penalty = ((2-1)^2 + (0-1)^2) / 2 = 1.
    x = torch.zeros(2, 1, 1, 2, requires_grad=True)
    scale = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    out = (x.flatten(1) * scale).sum(1)
    torch.testing.assert_close(gradient_penalty(out, x), torch.tensor(1.0))


@pytest.mark.parametrize("mode", ["imagenet", "caffe"])
def test_tanh_space_round_trip(mode):
    img = np.random.default_rng(0).integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
    x = normalize(img, mode)[None]
    tanh = to_tanh_space(x, mode)
    expected = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    torch.testing.assert_close(tanh, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(from_tanh_space(tanh, mode), x, atol=1e-4, rtol=0)


def test_lr_factor_is_linear_over_the_second_half():
    assert [lr_factor(s, 10, 0.5) for s in (0, 5, 6, 8, 10)] == [1.0, 1.0, 0.8, 0.4, 0.0]
    assert lr_factor(7, 10, 1.0) == 1.0  # decay_start >= 1: no decay
    assert lr_factor(0, 10, 0.0) == 1.0 and lr_factor(5, 10, 0.0) == 0.5


def test_residual_generator_starts_as_the_identity_and_learns():
    G = Generator(8, 1, residual=True)
    x = torch.rand(2, 3, 18, 30) * 1.8 - 0.9  # odd sizes: padded and cropped back
    c = torch.tensor([0, 1])
    assert torch.allclose(G(x, c), x, atol=1e-5)
    G(x, c).sum().backward()
    assert G.main[-2].weight.grad.abs().sum() > 0  # the zero-initialised last conv receives gradient
    plain = Generator(8, 1)
    plain.load_state_dict(G.state_dict())  # the same parameters: checkpoints load either way
