"""How a scene looks: a domain's style painted onto a layout (`render_appearance`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from symda.data.labels import NUM_CLASSES
from symda.data.synthcity.drawing import SKY
from symda.data.synthcity.layout import Layout, sample_layout


@dataclass(frozen=True)
class DomainStyle:
    """How a layout is painted. Colours are in [0, 1]; lengths are fractions of the image height H,
    so a style means the same at every resolution."""

    # Global colour map, applied per pixel in this order: per-channel gamma, 3x3 channel mix
    # (out = M @ in + offset), contrast around 0.5, saturation around the luminance, brightness offset.
    gamma: tuple[float, float, float]
    channel_mix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
    channel_offset: tuple[float, float, float]
    contrast: float
    saturation: float
    brightness: float
    instance_jitter: float  # std of per-object colour offsets (before class-specific scaling)
    exposure_jitter: float  # per-image brightness factor range, +-
    texture_cell: float  # cell size of the multiplicative surface texture, fraction of H
    texture_amp: float  # its strength
    grain_amp: float  # per-pixel surface grain (rendered before the camera blur)
    light_gradient: float  # strength of a linear illumination gradient of random direction
    vignette: float  # brightness loss at the corners
    blur_sigma: float  # camera blur, Gaussian sigma as a fraction of H
    sensor_noise: float  # std of additive per-pixel noise after the blur


SOURCE_STYLE = DomainStyle(
    # Identity colour map: the shared base palette is the "game engine" look.
    gamma=(1.0, 1.0, 1.0),
    channel_mix=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    channel_offset=(0.0, 0.0, 0.0),
    contrast=1.0,
    saturation=1.15,  # game renders are more saturated
    brightness=0.0,
    instance_jitter=0.12,
    exposure_jitter=0.08,
    # Fine, crisp texture and no camera effects: sharp synthetic renders.
    texture_cell=0.02,
    texture_amp=0.10,
    grain_amp=0.04,
    light_gradient=0.12,
    vignette=0.0,
    blur_sigma=0.0,
    sensor_noise=0.01,
)
TARGET_STYLE = DomainStyle(
    # A fixed nonlinear colour map: per-channel gamma, then a channel permutation (R<-B, G<-R, B<-G)
    # with some mixing (a hue rotation) whose green channel is inverted (G<-1-R), so that brightness
    # relations between surfaces change too. Per-channel mean/std transfer cannot undo either (it
    # neither moves information between channels nor flips a sign); a 1x1-conv translator learns both.
    # Without the inversion a random-init CNN trained on the source kept about 19 of the 20+ mIoU
    # gap closed by shape and brightness alone.
    gamma=(0.8, 1.0, 1.3),
    channel_mix=((0.15, 0.0, 0.85), (-0.85, -0.15, 0.0), (0.0, 0.85, 0.15)),
    channel_offset=(0.0, 1.0, 0.0),
    contrast=1.2,
    saturation=0.85,  # a real camera's duller colours
    brightness=0.02,
    instance_jitter=0.12,
    exposure_jitter=0.12,
    # Coarse blotchy surface texture instead of fine grain, plus optics: blur, vignetting, noise.
    texture_cell=0.08,
    texture_amp=0.2,
    grain_amp=0.0,
    light_gradient=0.2,
    vignette=0.35,
    blur_sigma=0.008,
    sensor_noise=0.025,
)
STYLES: dict[str, DomainStyle] = {"source": SOURCE_STYLE, "target": TARGET_STYLE}

# Shared base palette (before a style's colour map), RGB in [0, 1], by trainId. Deliberately not the
# Cityscapes label palette: it is a plausible scene palette with overlapping colours (cars, people and
# buildings vary a lot per instance), so classes must be told apart by shape and context.
_BASE_COLOURS = (
    np.array(
        [
            (88, 88, 94),  # road: asphalt
            (150, 142, 136),  # sidewalk: paving
            (150, 118, 96),  # building: varies a lot per instance
            (172, 166, 148),  # wall: concrete
            (122, 104, 82),  # fence
            (96, 96, 102),  # pole
            (44, 46, 42),  # traffic light housing
            (205, 175, 40),  # traffic sign
            (68, 118, 46),  # vegetation
            (138, 148, 82),  # terrain
            (140, 182, 228),  # sky
            (118, 84, 108),  # person clothes
            (96, 90, 138),  # rider clothes
            (122, 122, 132),  # car paint: varies a lot per instance
            (196, 196, 186),  # truck
            (205, 148, 44),  # bus
            (214, 214, 208),  # train / tram
            (72, 72, 92),  # motorcycle
            (52, 62, 54),  # bicycle
        ],
        dtype=np.float32,
    )
    / 255.0
)
# How much per-instance colour jitter each class gets (cars, buildings and clothes vary most).
_CLASS_JITTER = np.array(
    [0.3, 0.4, 1.0, 0.5, 0.6, 0.3, 0.2, 1.0, 0.5, 0.5, 0.3, 1.5, 1.5, 1.8, 0.9, 0.9, 0.5, 1.0, 0.8],
    dtype=np.float32,
)
# How strongly each class shows the surface texture (grass and asphalt much more than the sky).
_CLASS_TEXTURE = np.array(
    [1.0, 0.8, 0.7, 0.8, 0.6, 0.3, 0.2, 0.2, 1.6, 1.4, 0.25, 0.4, 0.4, 0.3, 0.4, 0.4, 0.4, 0.4, 0.3],
    dtype=np.float32,
)
# Part colours and how much they replace the object's own colour (alpha).
_PART_COLOURS = (
    np.array(
        [
            (0, 0, 0),  # none
            (60, 72, 92),  # window
            (40, 48, 60),  # vehicle glass
            (24, 24, 26),  # wheel / tyre
            (235, 235, 228),  # lane marking
            (230, 200, 80),  # traffic light lamp
            (214, 170, 140),  # skin
            (40, 40, 48),  # dark cloth / fence posts
            (92, 70, 48),  # tree trunk
            (150, 150, 156),  # rail
            (30, 34, 40),  # ego hood
            (110, 100, 90),  # static street furniture
            (240, 90, 60),  # vehicle lights
        ],
        dtype=np.float32,
    )
    / 255.0
)
_PART_ALPHA = np.array([0, 0.85, 0.9, 0.95, 0.95, 0.9, 0.9, 0.7, 0.9, 0.8, 0.9, 0.6, 0.9], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """(H, W) float32 noise of unit-ish std whose features are about `cell` pixels large."""
    gh, gw = max(2, math.ceil(height / max(cell, 1.0)) + 1), max(2, math.ceil(width / max(cell, 1.0)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BILINEAR))


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) float image with edge padding; sigma in pixels."""
    if sigma < 0.25:
        return img
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = img
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(t * np.take(padded, np.arange(k, k + n), axis=axis) for k, t in enumerate(taps))
    return out.astype(np.float32)


def apply_colour_map(rgb: np.ndarray, style: DomainStyle) -> np.ndarray:
    """The style's global per-pixel colour map. rgb: (..., 3) float in [0, 1] -> (..., 3) float in [0, 1]."""
    x = np.clip(rgb, 0.0, 1.0) ** np.asarray(style.gamma, dtype=np.float32)
    x = x @ np.asarray(style.channel_mix, dtype=np.float32).T + np.asarray(
        style.channel_offset, dtype=np.float32
    )
    x = 0.5 + style.contrast * (x - 0.5)
    lum = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = lum[..., None] + style.saturation * (x - lum[..., None])
    return np.clip(x + style.brightness, 0.0, 1.0)


def render_appearance(layout: Layout, rng: np.random.Generator, style: DomainStyle) -> np.ndarray:
    """Paint a layout: returns an (H, W, 3) uint8 RGB image in `style`.

    Shared across styles: the base palette, part materials, per-object colour jitter and lighting;
    style-specific: texture scale, the global colour map and the camera effects (see DomainStyle).
    """
    cls, parts, inst = layout.train_ids, layout.parts, layout.instances
    height, width = cls.shape
    base = np.full((256, 3), 0.4, dtype=np.float32)
    base[:NUM_CLASSES] = _BASE_COLOURS
    jitter = np.ones(256, dtype=np.float32)
    jitter[:NUM_CLASSES] = _CLASS_JITTER
    texture = np.full(256, 0.5, dtype=np.float32)
    texture[:NUM_CLASSES] = _CLASS_TEXTURE

    # Per-object colour: class colour + an offset per instance (hue and brightness both vary).
    offsets = rng.normal(0.0, style.instance_jitter, (256, 3)).astype(np.float32)
    offsets += rng.normal(0.0, style.instance_jitter, (256, 1)).astype(np.float32)
    img = base[cls] + offsets[inst] * jitter[cls][..., None]
    # Parts (windows, wheels, lane markings, ...) mostly replace the object's colour.
    alpha = _PART_ALPHA[parts][..., None]
    part_colour = _PART_COLOURS[parts] + 0.3 * offsets[inst]
    img = img * (1.0 - alpha) + part_colour * alpha

    # Sky brightens towards the horizon (shared physics), other surfaces get the style's texture.
    rows = np.arange(height, dtype=np.float32)[:, None]
    sky_gain = 0.85 + 0.25 * np.clip(rows / max(layout.horizon, 1.0), 0.0, 1.0)
    img = np.where((cls == SKY)[..., None], img * sky_gain[..., None], img)
    amp = texture[cls] * style.texture_amp
    img *= (1.0 + amp * _smooth_noise(rng, height, width, style.texture_cell * height))[..., None]
    if style.grain_amp > 0:
        img *= (
            1.0 + texture[cls] * style.grain_amp * rng.standard_normal((height, width), dtype=np.float32)
        )[..., None]

    # Illumination: a linear gradient of random direction and a per-image exposure.
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (math.cos(theta) * (xx / width - 0.5) + math.sin(theta) * (yy / height - 0.5)) * 2
    exposure = rng.uniform(1.0 - style.exposure_jitter, 1.0 + style.exposure_jitter)
    img *= (exposure * (1.0 + style.light_gradient * ramp))[..., None]

    img = apply_colour_map(img, style)
    if style.vignette > 0:
        r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2  # 1 at the corners
        img *= (1.0 - style.vignette * r2)[..., None]
    img = _gaussian_blur(img, style.blur_sigma * height)
    img += rng.normal(0.0, style.sensor_noise, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_scene(
    rng: np.random.Generator, domain: str, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One scene of `domain` ("source" or "target"): ((H, W, 3) uint8 RGB image, (H, W) uint8 trainIds)."""
    layout = sample_layout(rng, domain, height, width)
    return render_appearance(layout, rng, STYLES[domain]), layout.train_ids
