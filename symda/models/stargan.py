"""StarGAN (Choi et al., CVPR 2018) for two domains: 0 = source style, 1 = target style.

The layer layout and the submodule names (`main`, `conv1`, `conv2`) follow the published code, so a
generator checkpoint of the official repository maps onto `Generator` by name. Two deliberate
differences, both so that the translator works on the sizes a segmentation pipeline meets:

- `Generator.forward` reflect-pads H and W up to a multiple of 4 and crops the result back, so any
  image size works (1052x1914 GTA5 frames included); the two stride-2 levels need a multiple of 4.
- `Discriminator`'s domain head is a 3x3 conv averaged over space instead of a conv whose kernel equals
  the remaining feature size; see the class docstring.

And one option, off by default here and on in the CPU SynthCity config: `Generator(residual=True)`
predicts a change of the input, not a new image (see the class docstring).

Both networks take `c`, an (N,) LongTensor of domain ids.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Discriminator", "Generator", "InstanceNorm", "ResidualBlock", "gradient_penalty"]


class InstanceNorm(nn.InstanceNorm2d):
    """Affine InstanceNorm that always normalises with the input's own statistics.

    StarGAN builds its norms with `track_running_stats=True`, which gives the state dict running
    mean/var buffers; in PyTorch's eval mode such a layer would switch to those running averages and
    behave like BatchNorm. StarGAN never calls `eval()` at test time, so its translations use instance
    statistics. This class keeps the buffers (published checkpoints load, and they are still updated in
    training) but uses instance statistics in both modes, so `eval()` gives the training-time behaviour.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=True, track_running_stats=True)

    def forward(self, x: Tensor) -> Tensor:
        running = self.training  # buffers are only updated in training, never read
        return F.instance_norm(
            x,
            self.running_mean if running else None,
            self.running_var if running else None,
            self.weight,
            self.bias,
            use_input_stats=True,
            momentum=self.momentum,
            eps=self.eps,
        )


class ResidualBlock(nn.Module):
    """conv3x3-IN-ReLU-conv3x3-IN plus identity. (N, C, h, w) -> (N, C, h, w)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            InstanceNorm(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            InstanceNorm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


def domain_planes(c: Tensor, num_domains: int, height: int, width: int) -> Tensor:
    """(N,) domain ids -> (N, num_domains, height, width) one-hot planes (the code tiled over space)."""
    if c.dim() != 1:
        raise ValueError(f"domain code: expected an (N,) tensor of domain ids, got shape {tuple(c.shape)}")
    onehot = F.one_hot(c.long(), num_domains).to(torch.float32)
    return onehot[:, :, None, None].expand(-1, -1, height, width)


class Generator(nn.Module):
    """G(x, c): image x translated into the style of domain c.

    Args:
        conv_dim: channels of the first conv (the paper: 64); 2x and 4x after the two downsamplings.
        repeat_num: residual blocks at 1/4 resolution (the paper: 6).
        num_domains: length of the one-hot domain code (2: source, target).
        residual: output tanh(atanh(x) + r) instead of tanh(r), where r is the last conv's output, and
            start that conv at zero, so G starts as the identity and learns only the change of style
            (SimGAN's residual refiner, Shrivastava et al. 2017). The published StarGAN (False) must
            learn to redraw the whole image first; at a CPU budget of a few hundred generator steps it
            returns blurred scenes with invented texture, which costs the segmentation network more
            than the change of style gains. Same parameters either way, so checkpoints load in both.

    Shapes: x (N, 3, H, W) in [-1, 1], c (N,) int64 -> (N, 3, H, W) in [-1, 1], any H, W >= 4.
    """

    def __init__(
        self, conv_dim: int = 64, repeat_num: int = 6, num_domains: int = 2, residual: bool = False
    ) -> None:
        super().__init__()
        self.num_domains = num_domains
        self.residual = residual
        layers: list[nn.Module] = [
            nn.Conv2d(3 + num_domains, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
            InstanceNorm(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):
            layers += [
                nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1, bias=False),
                InstanceNorm(dim * 2),
                nn.ReLU(inplace=True),
            ]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(dim, dim // 2, kernel_size=4, stride=2, padding=1, bias=False),
                InstanceNorm(dim // 2),
                nn.ReLU(inplace=True),
            ]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        if residual:
            nn.init.zeros_(layers[-2].weight)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if c.shape != (n,):
            raise ValueError(
                f"Generator: c must be ({n},) domain ids for a batch of {n}, got {tuple(c.shape)}"
            )
        # Two stride-2 convs and two stride-2 transposed convs return 4 * (H // 4): pad to a multiple of 4
        # (reflect, so no dark border leaks into the style) and crop back to the input size.
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        planes = domain_planes(c, self.num_domains, x.shape[2], x.shape[3]).to(x.dtype)
        if not self.residual:
            return self.main(torch.cat([x, planes], dim=1))[:, :, :h, :w]
        change = self.main[:-1](torch.cat([x, planes], dim=1))  # before the tanh
        # atanh of a clamped input: +-1 (saturated pixels) would be infinite; 1 - 1e-3 is 0.13 grey levels
        # from the end of the range.
        return torch.tanh(torch.atanh(x.clamp(-1 + 1e-3, 1 - 1e-3)) + change)[:, :, :h, :w]


class Discriminator(nn.Module):
    """PatchGAN critic D_src and domain classifier D_cls on a shared trunk.

    The trunk is `repeat_num` 4x4 stride-2 convs (conv_dim, 2*conv_dim, ...) with LeakyReLU(0.01) and no
    normalisation (WGAN-GP penalises per-sample gradients, which batch statistics would couple).

    The published domain head is a conv whose kernel equals the remaining feature size (image_size /
    2**repeat_num), so that model only accepts one square input size. Here the domain head is a 3x3 conv
    to num_domains channels whose logits are averaged over space: the same receptive field at the
    training size, but any crop size (non-square crops, full frames) works.

    Shapes: x (N, 3, H, W), H and W >= 2**repeat_num -> (src (N, 1, H/2^r, W/2^r), cls (N, num_domains)).
    """

    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, num_domains: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, conv_dim, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.01),
        ]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.min_size = 2**repeat_num
        self.conv1 = nn.Conv2d(dim, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, num_domains, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"Discriminator: input {tuple(x.shape[-2:])} is smaller than 2**repeat_num = {self.min_size}"
            )
        h = self.main(x)
        return self.conv1(h), self.conv2(h).mean(dim=(2, 3))


def gradient_penalty(d_out: Tensor | Callable[[Tensor], Tensor], x_hat: Tensor) -> Tensor:
    """WGAN-GP term E[(||dD(x_hat)/dx_hat||_2 - 1)^2], the norm over each sample's flattened gradient.

    Args:
        d_out: D_src evaluated at x_hat (any shape; its sum is differentiated, as StarGAN's
            grad_outputs=ones), or a function that computes it from x_hat.
        x_hat: (N, ...) points the penalty is taken at; must require grad when d_out is a tensor.

    Returns a scalar; the graph is kept (create_graph) so the penalty can be backpropagated to D.
    """
    if callable(d_out):
        if not x_hat.requires_grad:
            x_hat = x_hat.detach().requires_grad_(True)
        d_out = d_out(x_hat)
    (grad,) = torch.autograd.grad(
        outputs=d_out, inputs=x_hat, grad_outputs=torch.ones_like(d_out), create_graph=True, retain_graph=True
    )
    norm = grad.flatten(1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()
