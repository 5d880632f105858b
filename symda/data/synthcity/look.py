"""How a v2 scene looks: a physically ordered image formation, every step one of the gap's factors.

    albedo (palette, per-object jitter, parts)  x  surface texture        [texture]
      x  light: ambient + sun * facing * (1 - cast shadow), sky model       [illumination]
      -> haze with distance, white balance, tone curve, contrast, saturation [tone]
      -> vignetting, defocus, motion blur, signal-dependent noise, JPEG      [sensor]

A `Look` holds every parameter of one domain; gap.py builds the source's and the target's from the
factor strengths. Textures come in two families per class (`texture` blends them: 0 = the source's
game-like family, 1 = the target's photographic one), so a pixel-level translator can map one into
the other only in part: the target's cracks, patches, stains and leaf gaps are not a function of the
source pixel underneath.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from symda.data.labels import NUM_CLASSES
from symda.data.synthcity.appearance import (
    _BASE_COLOURS,
    _CLASS_JITTER,
    _PART_ALPHA,
    _PART_COLOURS,
    _gaussian_blur,
    _smooth_noise,
)
from symda.data.synthcity.drawing import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FACING_CAMERA,
    FACING_LEFT,
    FACING_NONE,
    FACING_RIGHT,
    FACING_ROUND,
    FACING_UP,
    FENCE,
    MOTORCYCLE,
    PART_LANE,
    PERSON,
    RIDER,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
)
from symda.data.synthcity.layout import Layout

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_VEHICLES = (CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)


@dataclass(frozen=True)
class Look:
    """Every rendering parameter of one v2 domain (colours in [0, 1], lengths as fractions of H or W)."""

    # tone and colour
    saturation: float  # around the luminance; a game engine's > 1, a photograph's < 1
    contrast: float  # around mid-grey
    tone_curve: float  # 0 = linear, 1 = a camera's filmic curve (lifted blacks, soft shoulder)
    white_balance: tuple[float, float, float]  # mean RGB gains (a warm or cool cast)
    white_balance_jitter: float  # per-image std of the gains
    haze: float  # extinction per metre (1 / visibility); 0 = a crisp render
    haze_colour: tuple[float, float, float]
    # texture
    texture: float  # 0 = the source's texture families, 1 = the target's
    # illumination
    sun: float  # strength of direct sunlight
    ambient: float  # sky light
    shadow_blur: float  # cast-shadow penumbra, fraction of H (overcast light: wide and faint)
    overcast_sky: float  # 0 = a clear blue gradient, 1 = a flat bright grey sky
    # sensor and optics
    shot_noise: float  # variance per unit intensity (signal-dependent noise)
    read_noise: float  # std of the signal-independent noise
    defocus: float  # Gaussian blur sigma, fraction of H
    motion_blur: float  # longest horizontal motion blur, fraction of W (per image uniform in [0, it])
    vignette: float  # brightness lost at the corners
    jpeg_quality: int  # 0: none; else the JPEG quality the frame was compressed at
    exposure_jitter: float = 0.1  # per-image exposure factor range, +-
    instance_jitter: float = 0.12  # std of per-object colour offsets


# ------------------------------------------------------------------------------------------- noise


def fbm(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 4) -> np.ndarray:
    """(H, W) fractal noise of unit-ish std: octaves of smooth noise from `cell` pixels down, 1/f-weighted."""
    out = np.zeros((height, width), dtype=np.float32)
    total = 0.0
    for k in range(octaves):
        weight = 0.5**k
        out += weight * _smooth_noise(rng, height, width, max(cell / 2**k, 1.0))
        total += weight**2
    return out / math.sqrt(total)


def stretched_noise(
    rng: np.random.Generator, height: int, width: int, cell_y: float, cell_x: float
) -> np.ndarray:
    """(H, W) smooth noise with features cell_y x cell_x pixels (streaks when one is much larger)."""
    gh, gw = max(2, math.ceil(height / max(cell_y, 1.0)) + 1), max(2, math.ceil(width / max(cell_x, 1.0)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC))


def grid_lines(height: int, width: int, period_y: float, period_x: float, offset_rows: bool) -> np.ndarray:
    """(H, W) in [0, 1]: 1 on the mortar lines of a brick (offset_rows) or tile grid, 0 elsewhere."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    row = np.floor(yy / period_y)
    shift = (row % 2) * period_x / 2 if offset_rows else 0.0
    fy = (yy % period_y) / period_y
    fx = ((xx + shift) % period_x) / period_x
    edge_y, edge_x = 1.2 / max(period_y, 1.0), 1.2 / max(period_x, 1.0)
    return ((fy < edge_y) | (fx < edge_x)).astype(np.float32)


def crack_map(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """(H, W) in [0, 1]: thin random-walk cracks (1 on a crack)."""
    im = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(im)
    for _ in range(n):
        x, y = rng.uniform(0, width), rng.uniform(height * 0.45, height)
        angle = rng.uniform(0, 2 * math.pi)
        pts = [(x, y)]
        for _ in range(int(rng.integers(4, 10))):
            angle += rng.normal(0, 0.6)
            step = rng.uniform(0.02, 0.06) * width
            x, y = x + step * math.cos(angle), y + step * math.sin(angle) * 0.5
            pts.append((x, y))
        draw.line(pts, fill=255, width=1)
    return np.asarray(im, dtype=np.float32) / 255.0


def patch_map(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """(H, W) in [-1, 1]: repaired asphalt, darker or lighter rectangles and blobs."""
    im = Image.new("F", (width, height), 0.0)
    draw = ImageDraw.Draw(im)
    for _ in range(n):
        cx, cy = rng.uniform(0, width), rng.uniform(height * 0.5, height)
        w, h = rng.uniform(0.05, 0.3) * width, rng.uniform(0.02, 0.12) * height
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        value = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0))
        (draw.rectangle if rng.random() < 0.6 else draw.ellipse)(box, fill=value)
    return np.asarray(im, dtype=np.float32)


# --------------------------------------------------------------------------------------------- texture


def _source_textures(rng: np.random.Generator, h: int, w: int) -> dict[str, np.ndarray]:
    """The source's game-like texture families, (H, W) multiplicative offsets by class group."""
    grain = rng.standard_normal((h, w)).astype(np.float32)
    return {
        "road": 0.05 * grain + 0.05 * _smooth_noise(rng, h, w, 0.05 * h),
        "sidewalk": -0.18 * grid_lines(h, w, 0.05 * h, 0.05 * h, offset_rows=False) + 0.03 * grain,
        "facade": 0.14 * grid_lines(h, w, 0.025 * h, 0.06 * h, offset_rows=True) - 0.05 + 0.02 * grain,
        "vegetation": 0.18 * _smooth_noise(rng, h, w, 0.06 * h),
        "terrain": 0.07 * grain + 0.06 * _smooth_noise(rng, h, w, 0.04 * h),
        "vehicle": 0.02 * grain,
        "sky": np.zeros((h, w), dtype=np.float32),
        "person": 0.03 * grain,
        "other": 0.03 * grain,
    }


def _target_textures(rng: np.random.Generator, h: int, w: int) -> dict[str, np.ndarray]:
    """The target's photographic texture families: other statistics, and details that no function of
    the source pixel can predict (cracks, patches, stains, leaf gaps, clouds). Most of their energy is
    at coarse scales (patches and stains a tenth of the image high), so it survives the 2x downscaling
    that the CPU models train at; fine grain alone would be averaged away."""
    fine = _smooth_noise(rng, h, w, 0.008 * h)
    grain = rng.standard_normal((h, w)).astype(np.float32)
    leaves = fbm(rng, h, w, 0.06 * h, octaves=3)
    rows = np.arange(h, dtype=np.float32)[:, None] / h
    cracks = _gaussian_blur(crack_map(rng, h, w, int(rng.integers(4, 12)))[..., None], 0.004 * h)[..., 0]
    return {
        "road": 0.2 * fbm(rng, h, w, 0.3 * h) - 0.8 * cracks + 0.3 * patch_map(rng, h, w, int(rng.integers(2, 7)))
        + 0.06 * grain,
        "sidewalk": 0.25 * fbm(rng, h, w, 0.15 * h) - 0.15 * grid_lines(h, w, 0.04 * h, 0.07 * h, offset_rows=True)
        * (0.6 + 0.4 * _smooth_noise(rng, h, w, 0.1 * h)),
        "facade": 0.25 * fbm(rng, h, w, 0.1 * h) + 0.3 * stretched_noise(rng, h, w, 0.4 * h, 0.03 * w) * rows,
        "vegetation": 0.3 * fine - 0.6 * (leaves < -0.6) + 0.2 * leaves,
        "terrain": 0.25 * fbm(rng, h, w, 0.1 * h) + 0.15 * np.sin(np.arange(w, dtype=np.float32)[None, :] / (0.04 * w)
                                                                  + 3.0 * _smooth_noise(rng, h, w, 0.2 * h)),
        "vehicle": 0.2 * stretched_noise(rng, h, w, 0.05 * h, 0.3 * w),
        "sky": 0.15 * fbm(rng, h, w, 0.35 * h),
        "person": 0.2 * fbm(rng, h, w, 0.04 * h, octaves=2),
        "other": 0.1 * fbm(rng, h, w, 0.05 * h) + 0.04 * grain,
    }  # fmt: skip


_GROUP = np.full(256, 8, dtype=np.int64)  # class -> texture group index (GROUPS order); "other" by default
GROUPS = ("road", "sidewalk", "facade", "vegetation", "terrain", "vehicle", "sky", "person", "other")
for _cls, _group in ((ROAD, 0), (SIDEWALK, 1), (BUILDING, 2), (WALL, 2), (FENCE, 2), (VEGETATION, 3),
                     (TERRAIN, 4), (SKY, 6), (PERSON, 7), (RIDER, 7), *((c, 5) for c in _VEHICLES)):  # fmt: skip
    _GROUP[_cls] = _group


def texture_maps(rng: np.random.Generator, height: int, width: int, blend: float) -> np.ndarray:
    """(len(GROUPS), H, W) multiplicative offsets of every class group: the blend of the source (0) and
    target (1) texture families."""
    parts = []
    if blend < 1:
        parts.append((1.0 - blend, _source_textures(rng, height, width)))
    if blend > 0:
        parts.append((blend, _target_textures(rng, height, width)))
    return sum(weight * np.stack([tex[g] for g in GROUPS]) for weight, tex in parts)


def surface_texture(maps: np.ndarray, train_ids: np.ndarray) -> np.ndarray:
    """(H, W): each pixel's class-group texture from texture_maps."""
    return np.take_along_axis(maps, _GROUP[train_ids][None], axis=0)[0]


# ------------------------------------------------------------------------------------------ the render


def _lambert(facing: np.ndarray, sun: tuple[float, float, float]) -> np.ndarray:
    """(H, W) cosine of each surface's normal with the direction to the sun (0 when facing away)."""
    sx, sy, sz = sun
    table = np.zeros(256, dtype=np.float32)
    table[FACING_UP], table[FACING_RIGHT], table[FACING_LEFT] = sy, max(sx, 0.0), max(-sx, 0.0)
    table[FACING_CAMERA], table[FACING_ROUND], table[FACING_NONE] = max(-sz, 0.0), 0.5 + 0.4 * sy, 0.5
    return table[facing]


def _tone_curve(x: np.ndarray, amount: float) -> np.ndarray:
    """Blend of linear and a filmic curve (ACES-like: soft shoulder) with lifted blacks."""
    if amount <= 0:
        return x
    filmic = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    filmic = 0.04 + 0.96 * filmic / ((1.0 * (2.51 + 0.03)) / (2.43 + 0.59 + 0.14))  # white stays white
    return (1.0 - amount) * x + amount * filmic


def _motion_blur(img: np.ndarray, length: int) -> np.ndarray:
    """Horizontal box blur of `length` pixels (camera or vehicle motion), edges clamped."""
    if length < 2:
        return img
    padded = np.pad(img, ((0, 0), (length // 2, length - 1 - length // 2), (0, 0)), mode="edge")
    csum = np.cumsum(padded, axis=1, dtype=np.float64)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    return ((csum[:, length:] - csum[:, :-length]) / length).astype(np.float32)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 through a JPEG encode/decode at `quality` (block and ringing artefacts)."""
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def render_look(layout: Layout, rng: np.random.Generator, look: Look) -> np.ndarray:
    """Paint a layout in `look`: (H, W, 3) uint8 RGB. Needs the layout's depth, facing and shadow maps."""
    cls, parts, inst = layout.train_ids, layout.parts, layout.instances
    height, width = cls.shape
    sky = cls == SKY
    base = np.full((256, 3), 0.4, dtype=np.float32)
    base[:NUM_CLASSES] = _BASE_COLOURS
    jitter = np.ones(256, dtype=np.float32)
    jitter[:NUM_CLASSES] = _CLASS_JITTER

    # Albedo: class colour, per-object offsets, parts; then the class's surface texture.
    offsets = rng.normal(0.0, look.instance_jitter, (256, 3)).astype(np.float32)
    offsets += rng.normal(0.0, look.instance_jitter, (256, 1)).astype(np.float32)
    albedo = base[cls] + offsets[inst] * jitter[cls][..., None]
    alpha = _PART_ALPHA[parts][..., None]
    if look.texture > 0:  # worn lane markings: the paint is partly gone
        wear = np.clip(0.5 + 0.8 * _smooth_noise(rng, height, width, 0.02 * height), 0.0, 1.0)
        alpha = np.where(
            (parts == PART_LANE)[..., None], alpha * (1.0 - look.texture * (1.0 - wear))[..., None], alpha
        )
    albedo = albedo * (1.0 - alpha) + (_PART_COLOURS[parts] + 0.3 * offsets[inst]) * alpha
    textures = texture_maps(rng, height, width, look.texture)
    albedo *= (1.0 + surface_texture(textures, cls))[..., None]
    # Vehicles: the paint's specular highlight on the upper body and a darker lower body.
    rows = np.arange(height, dtype=np.float32)[:, None]
    vehicle = np.isin(cls, _VEHICLES)
    if vehicle.any():
        top = np.where(vehicle, rows, height).min(axis=0, keepdims=True)
        rel = np.clip((rows - top) / (0.08 * height), 0.0, 3.0)
        gloss = look.texture * 0.5 * np.exp(-((rel - 0.6) ** 2) / 0.05) - 0.1 * rel / 3
        albedo = np.where(vehicle[..., None], albedo * (1.0 + gloss)[..., None], albedo)

    # Light: ambient sky light + direct sun on the surfaces that face it, minus cast shadows.
    sun = layout.sun or (0.3, 0.8, -0.5)
    shadow = layout.shadow if layout.shadow is not None else np.zeros((height, width), np.float32)
    if look.shadow_blur > 0:
        shadow = _gaussian_blur(shadow[..., None], look.shadow_blur * height)[..., 0]
    facing = layout.facing if layout.facing is not None else np.full((height, width), FACING_NONE, np.uint8)
    lit = _lambert(facing, sun) * (1.0 - np.where(facing == FACING_UP, shadow, 0.0))
    light = look.ambient + look.sun * lit
    exposure = rng.uniform(1.0 - look.exposure_jitter, 1.0 + look.exposure_jitter)
    img = albedo * (light * exposure)[..., None]

    # Sky: a clear sky's blue gradient, or an overcast one's flat bright grey; clouds are its texture.
    horizon = max(layout.horizon, 1.0)
    gain = (0.8 + 0.3 * np.clip(rows / horizon, 0.0, 1.0))[..., None]
    clear = base[SKY] * gain
    grey = (
        np.array([0.8, 0.82, 0.85], dtype=np.float32)
        * (0.95 + 0.08 * np.clip(rows / horizon, 0, 1))[..., None]
    )
    sky_colour = (1.0 - look.overcast_sky) * clear + look.overcast_sky * grey
    sky_tex = 1.0 + textures[_GROUP[SKY]]
    img = np.where(
        sky[..., None], np.broadcast_to(sky_colour, img.shape) * sky_tex[..., None] * exposure, img
    )

    # Tone and colour: haze with distance (not on the sky), white balance, tone curve, contrast, saturation.
    if look.haze > 0 and layout.depth is not None:
        t = np.exp(-look.haze * np.minimum(layout.depth, 500.0))[..., None]
        hazed = img * t + np.asarray(look.haze_colour, dtype=np.float32) * (1.0 - t)
        img = np.where(sky[..., None], img, hazed)
    gains = np.asarray(look.white_balance, dtype=np.float32) * (
        1.0 + look.white_balance_jitter * rng.standard_normal(3).astype(np.float32)
    )
    img = np.clip(img * gains, 0.0, None)
    img = _tone_curve(np.clip(img, 0.0, 1.5), look.tone_curve)
    img = 0.5 + look.contrast * (img - 0.5)
    lum = (img @ _LUMA)[..., None]
    img = np.clip(lum + look.saturation * (img - lum), 0.0, 1.0)

    # Sensor and optics.
    if look.vignette > 0:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        img *= (1.0 - look.vignette * ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)[..., None]
    img = _gaussian_blur(img.astype(np.float32), look.defocus * height)
    img = _motion_blur(img, int(rng.uniform(0.0, look.motion_blur) * width))
    sigma = np.sqrt(look.shot_noise * np.clip(img, 0.0, 1.0) + look.read_noise**2)
    img = img + sigma * rng.standard_normal(img.shape).astype(np.float32)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return _jpeg(out, look.jpeg_quality) if look.jpeg_quality else out
