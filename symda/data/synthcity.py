"""SynthCity: the embedded GTA5 -> Cityscapes stand-in benchmark.

Real GTA5 and Cityscapes are large and licensed, so the project generates its own domain pair of
street scenes and writes it in the real datasets' on-disk formats, so that the real loaders read it:

    OUT/gta5/images/00001.png                    RGB, source style
    OUT/gta5/labels/00001.png                    palettised ("P") PNG of Cityscapes labelIds
    OUT/cityscapes/leftImg8bit/{train,val}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    OUT/cityscapes/gtFine/{train,val}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png   ("L")
    OUT/synthcity.json                           manifest: version, seed, size, counts, styles

A scene is made in two independent steps, so that the same layout can be rendered in either style:

1. `sample_layout` draws the geometry: a street in perspective with a vanishing point, drawn with PIL
   on three (H, W) canvases: the trainId map, a "part" map (windows, wheels, lane markings, ...; they
   only change appearance) and an instance map (per-object colour jitter).
2. `render_appearance` paints it in a domain's style (`DomainStyle`). The domain gap is mostly a
   global, learnable pixel-level map (channel mixing that rotates hues and inverts one channel, gamma,
   contrast) plus texture scale, blur, vignetting and sensor-noise differences, which an unpaired image
   translator can learn but a per-channel mean/std colour transfer cannot undo. Layout statistics
   differ modestly too (`LayoutStats`: horizon height, object density, class mix, ego-vehicle hood).

The styles and layout statistics are part of the benchmark's definition (frozen); the seed only
samples scenes and jitter. Every image's generator is derived from (seed, domain, index), so the
bytes written do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from symda.data.labels import (
    IGNORE_INDEX,
    LABEL_ID_PALETTE,
    NUM_CLASSES,
    TRAIN_ID_TO_LABEL_ID,
    colorize,
    label_ids_to_train_ids,
)

GENERATOR_VERSION = 1
MANIFEST_NAME = "synthcity.json"

# Made-up city names; Cityscapes file names start with the city.
TRAIN_CITIES: tuple[str, ...] = ("alderhaven", "brightwater", "corvale")
VAL_CITIES: tuple[str, ...] = ("dunmore", "elmsford")
CITYSCAPES_FRAME = 19  # every fine-annotated Cityscapes frame is the 20th of its snippet: *_000019_*

# trainIds, named for readability of the drawing code.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
VOID = IGNORE_INDEX

# Parts: sub-object materials that change the appearance only, never the class.
PART_NONE, PART_WINDOW, PART_GLASS, PART_WHEEL, PART_LANE, PART_LAMP, PART_SKIN, PART_DARK = range(8)
PART_TRUNK, PART_RAIL, PART_EGO, PART_STATIC, PART_LIGHT = range(8, 13)
# Void pixels keep a real Cityscapes labelId: the ego-vehicle hood is 1, street furniture 'static' is 4.
_VOID_PART_LABEL_ID = {PART_EGO: 1, PART_STATIC: 4}

_DOMAIN_CODES = {"source": 0, "target": 1, "val": 2}  # RNG stream per (domain, split)


# ---------------------------------------------------------------------------------------------------
# Benchmark definition: layout statistics and appearance style per domain.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutStats:
    """Scene-statistics of one domain. Both domains share the scene grammar; only the rates differ."""

    horizon_mean: float  # horizon row as a fraction of H: GTA5's camera sits lower/looks up more
    horizon_std: float
    focal: float  # focal length as a fraction of W
    road_half_width: tuple[float, float]  # metres
    sidewalk_width: tuple[float, float]  # metres
    building_prob: float  # per side of the street; otherwise a park (terrain + vegetation)
    cars: float  # Poisson means of object counts per image
    trucks: float
    buses: float
    train_prob: float  # trams are rare, as in Cityscapes
    persons: float
    riders: float
    parked_bicycles: float
    trees: float
    poles: float
    fence_prob: float  # per side
    wall_prob: float  # per side
    static_objects: float  # void street furniture (labelId 4), so that a few pixels are ignored
    ego_hood_prob: float  # Cityscapes frames show the ego car's bonnet (labelId 1); GTA5 frames do not


SOURCE_LAYOUT = LayoutStats(
    horizon_mean=0.40,
    horizon_std=0.04,
    focal=0.85,
    road_half_width=(4.0, 7.0),
    sidewalk_width=(3.5, 7.0),
    building_prob=0.85,
    cars=5.0,
    trucks=0.4,
    buses=0.3,
    train_prob=0.06,
    persons=6.0,
    riders=1.0,
    parked_bicycles=1.0,
    trees=3.0,
    poles=4.0,
    fence_prob=0.3,
    wall_prob=0.35,
    static_objects=1.0,
    ego_hood_prob=0.0,
)
TARGET_LAYOUT = LayoutStats(
    horizon_mean=0.46,
    horizon_std=0.03,
    focal=0.85,
    road_half_width=(3.5, 6.0),
    sidewalk_width=(4.0, 8.0),
    building_prob=0.7,
    cars=4.0,
    trucks=0.3,
    buses=0.2,
    train_prob=0.05,
    persons=8.0,
    riders=1.2,
    parked_bicycles=1.5,
    trees=4.5,
    poles=5.0,
    fence_prob=0.4,
    wall_prob=0.25,
    static_objects=1.5,
    ego_hood_prob=0.6,
)
LAYOUT_STATS: dict[str, LayoutStats] = {"source": SOURCE_LAYOUT, "target": TARGET_LAYOUT}


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


# ---------------------------------------------------------------------------------------------------
# Layout: geometry drawn on label / part / instance canvases.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Layout:
    """The geometry of one scene; appearance-free.

    train_ids: (H, W) uint8 trainIds, 255 = ignore.
    parts: (H, W) uint8 part codes (PART_*), appearance only.
    instances: (H, W) uint8 instance index (wraps at 256), for per-object colour jitter.
    horizon: horizon row in pixels (float), used by the renderer's sky gradient.
    """

    train_ids: np.ndarray
    parts: np.ndarray
    instances: np.ndarray
    horizon: float

    def label_ids(self) -> np.ndarray:
        """(H, W) uint8 Cityscapes labelIds; void parts keep their own id (ego vehicle 1, static 4)."""
        lut = np.zeros(256, dtype=np.uint8)
        lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
        out = lut[self.train_ids]
        for part, label_id in _VOID_PART_LABEL_ID.items():
            out[(self.train_ids == VOID) & (self.parts == part)] = label_id
        return out


class _Canvas:
    """Three PIL canvases drawn in lock-step: class, part and instance."""

    def __init__(self, height: int, width: int) -> None:
        self.images = [Image.new("L", (width, height), SKY), Image.new("L", (width, height), 0)]
        self.images.append(Image.new("L", (width, height), 0))
        self.draws = [ImageDraw.Draw(im) for im in self.images]
        self.instance = 0

    def new_instance(self) -> int:
        self.instance = (self.instance + 1) % 256
        return self.instance

    def _values(self, cls: int, part: int, inst: int | None) -> tuple[int, int, int]:
        return cls, part, self.instance if inst is None else inst

    def polygon(
        self, pts: list[tuple[float, float]], cls: int, part: int = 0, inst: int | None = None
    ) -> None:
        for draw, value in zip(self.draws, self._values(cls, part, inst), strict=True):
            draw.polygon(pts, fill=value)

    def ellipse(
        self, box: tuple[float, float, float, float], cls: int, part: int = 0, inst: int | None = None
    ) -> None:
        x0, y0, x1, y1 = box
        box = (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))  # PIL refuses x1 < x0
        for draw, value in zip(self.draws, self._values(cls, part, inst), strict=True):
            draw.ellipse(box, fill=value)

    def ring(
        self,
        box: tuple[float, float, float, float],
        width: int,
        cls: int,
        part: int = 0,
        inst: int | None = None,
    ) -> None:
        x0, y0, x1, y1 = box
        box = (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))
        for draw, value in zip(self.draws, self._values(cls, part, inst), strict=True):
            draw.ellipse(box, outline=value, width=width)

    def line(
        self, pts: list[tuple[float, float]], width: float, cls: int, part: int = 0, inst: int | None = None
    ) -> None:
        w = max(1, round(width))
        for draw, value in zip(self.draws, self._values(cls, part, inst), strict=True):
            draw.line(pts, fill=value, width=w)

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, cls: int, part: int = 0, inst: int | None = None
    ) -> None:
        # At least one pixel wide/high, so thin far objects do not vanish.
        if x1 - x0 < 1:
            x1 = x0 + 1
        if y1 - y0 < 1:
            y0 = y1 - 1
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls, part, inst)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.asarray(im, dtype=np.uint8).copy() for im in self.images)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at height `cam_h` metres looking along the street (+Z), horizon row `hz`."""

    height: int
    width: int
    hz: float
    vx: float
    focal: float  # pixels
    cam_h: float = 1.5

    def scale(self, z: float) -> float:
        """Pixels per metre at depth z."""
        return self.focal / z

    def point(self, x: float, z: float, h: float = 0.0) -> tuple[float, float]:
        """Image (col, row) of the world point at lateral x, depth z, height h above the ground."""
        s = self.focal / z
        return self.vx + x * s, self.hz + (self.cam_h - h) * s

    def near_z(self) -> float:
        """Depth whose ground point is the bottom image row."""
        return self.cam_h * self.focal / (self.height - self.hz)

    def ground_quad(self, x0: float, x1: float, z0: float, z1: float) -> list[tuple[float, float]]:
        return [self.point(x0, z0), self.point(x1, z0), self.point(x1, z1), self.point(x0, z1)]

    def wall_quad(self, x: float, z0: float, z1: float, h0: float, h1: float) -> list[tuple[float, float]]:
        """A vertical face parallel to the street at lateral x, from depth z0 to z1, heights h0..h1."""
        return [self.point(x, z0, h0), self.point(x, z0, h1), self.point(x, z1, h1), self.point(x, z1, h0)]


@dataclass(frozen=True)
class _Street:
    """Lateral extents of the street, metres (symmetric about the camera's x = 0 for simplicity)."""

    road: float  # half width of the road
    sidewalk: float  # sidewalk width
    verge: float  # grass verge between road and sidewalk (0 = none)
    end: float  # depth where the street ends in a far backdrop
    building_left: bool
    building_right: bool

    @property
    def facade(self) -> float:
        return self.road + self.verge + self.sidewalk


def _log_depth(rng: np.random.Generator, z_min: float, z_max: float) -> float:
    """Depth sampled log-uniformly: near objects are as frequent per octave as far ones."""
    return float(math.exp(rng.uniform(math.log(z_min), math.log(z_max))))


def _draw_ground(cv: _Canvas, cam: _Camera, st: _Street, rng: np.random.Generator) -> None:
    z0, z1 = 0.3, st.end
    cv.new_instance()
    cv.rect(0, cam.hz, cam.width, cam.height + 1, TERRAIN)
    cv.new_instance()
    cv.polygon(cam.ground_quad(-st.facade - 30, st.facade + 30, z0, z1), SIDEWALK)
    if st.verge > 0:
        cv.new_instance()
        cv.polygon(cam.ground_quad(-st.road - st.verge, st.road + st.verge, z0, z1), TERRAIN)
    cv.new_instance()
    cv.polygon(cam.ground_quad(-st.road, st.road, z0, z1), ROAD)
    # Lane markings: solid edge lines and a dashed centre line; appearance only (still road).
    for x in (-st.road + 0.4, st.road - 0.55):
        cv.polygon(cam.ground_quad(x, x + 0.15, z0, z1), ROAD, PART_LANE)
    phase = rng.uniform(0, 9)
    z = 1.0 + phase
    while z < min(z1, 80):
        cv.polygon(cam.ground_quad(-0.08, 0.08, z, z + 3.0), ROAD, PART_LANE)
        z += 9.0


def _draw_windows(
    cv: _Canvas,
    cam: _Camera,
    x: float,
    z0: float,
    z1: float,
    height: float,
    inst: int,
    rng: np.random.Generator,
) -> None:
    """A grid of windows on a facade; they are still 'building', only their appearance differs."""
    spacing = rng.uniform(2.2, 3.2)
    floor_h = rng.uniform(2.8, 3.6)
    win_w, win_h = spacing * rng.uniform(0.4, 0.6), floor_h * rng.uniform(0.4, 0.55)
    zs = np.arange(z0 + spacing * 0.5, z1 - win_w, spacing)
    hs = np.arange(floor_h * 0.8, height - win_h - 0.5, floor_h)
    for z in zs:
        if cam.scale(z) * win_h < 1.5:  # sub-pixel windows would only be noise
            break
        for h in hs:
            cv.polygon(cam.wall_quad(x, z, z + win_w, h, h + win_h), BUILDING, PART_WINDOW, inst)


def _draw_facades(cv: _Canvas, cam: _Camera, st: _Street, rng: np.random.Generator) -> None:
    """Buildings along each side as vertical faces parallel to the street, far to near."""
    for side, has_buildings in ((-1, st.building_left), (1, st.building_right)):
        x = side * st.facade
        if not has_buildings:
            continue
        z = 0.3
        blocks = []
        while z < st.end:
            length = rng.uniform(6.0, 18.0)
            gap = rng.uniform(2.0, 10.0) if rng.random() < 0.15 else 0.0  # a side street
            blocks.append((z, z + length, rng.uniform(6.0, 26.0)))
            z += length + gap
        for z0, z1, height in reversed(blocks):
            inst = cv.new_instance()
            cv.polygon(cam.wall_quad(x, z0, z1, 0.0, height), BUILDING, inst=inst)
            _draw_windows(cv, cam, x, z0, z1, height, inst, rng)


def _draw_park(cv: _Canvas, cam: _Camera, st: _Street, side: int, rng: np.random.Generator) -> None:
    """A side without buildings: grass beyond the sidewalk and a wall of tree crowns behind it."""
    x = side * st.facade
    cv.new_instance()
    cv.polygon(cam.ground_quad(min(x, x + side * 40), max(x, x + side * 40), 0.3, st.end), TERRAIN)
    depth = side * rng.uniform(6.0, 14.0)
    for _ in range(int(rng.integers(6, 12))):
        z = _log_depth(rng, 3.0, st.end)
        r = rng.uniform(2.5, 5.0)
        cx, cy = cam.point(x + depth + side * r, z, rng.uniform(3.0, 6.0))
        s = cam.scale(z)
        cv.new_instance()
        cv.ellipse((cx - r * s * 1.4, cy - r * s, cx + r * s * 1.4, cy + r * s), VEGETATION)
        cv.rect(cx - 0.2 * s, cy, cx + 0.2 * s, cam.point(0, z)[1], VEGETATION, PART_TRUNK)


def _draw_backdrop(cv: _Canvas, cam: _Camera, st: _Street, rng: np.random.Generator) -> None:
    """What closes the street far away: a row of buildings or of trees across the vanishing point."""
    x = -st.facade - 10
    while x < st.facade + 10:
        w = rng.uniform(6.0, 15.0)
        cv.new_instance()
        if rng.random() < 0.7:
            h = rng.uniform(8.0, 30.0)
            cv.polygon(
                [
                    cam.point(x, st.end, 0),
                    cam.point(x, st.end, h),
                    cam.point(x + w, st.end, h),
                    cam.point(x + w, st.end, 0),
                ],
                BUILDING,
            )
        else:
            x0, y0 = cam.point(x, st.end, rng.uniform(6.0, 14.0))
            x1, y1 = cam.point(x + w, st.end, 0)
            cv.ellipse((x0, y0, x1, y1 + (y1 - y0) * 0.3), VEGETATION)
        x += w


def _draw_barrier(
    cv: _Canvas, cam: _Camera, st: _Street, side: int, cls: int, rng: np.random.Generator
) -> None:
    """A wall or fence segment along the outer edge of the sidewalk."""
    x = side * (st.facade - 0.3)
    z0 = _log_depth(rng, 2.0, 25.0)
    z1 = z0 + rng.uniform(5.0, 25.0)
    h = rng.uniform(0.8, 2.2) if cls == WALL else rng.uniform(0.9, 1.8)
    inst = cv.new_instance()
    cv.polygon(cam.wall_quad(x, z0, z1, 0.0, h), cls, inst=inst)
    if cls == FENCE:  # posts and a top rail make a fence a fence, whatever its colour
        z = z0
        while z < z1 and cam.scale(z) * 0.1 > 0.3:
            cv.polygon(cam.wall_quad(x, z, z + 0.12, 0.0, h), FENCE, PART_DARK, inst)
            z += rng.uniform(1.2, 2.5)
        cv.polygon(cam.wall_quad(x, z0, z1, h - 0.12, h), FENCE, PART_DARK, inst)


def _sprite_tree(cv: _Canvas, cam: _Camera, x: float, z: float, rng: np.random.Generator) -> None:
    s = cam.scale(z)
    trunk_h, r = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.8)
    bx, by = cam.point(x, z)
    inst = cv.new_instance()
    # Cityscapes labels trunks as vegetation too.
    cv.rect(bx - 0.15 * s, by - trunk_h * s, bx + 0.15 * s, by, VEGETATION, PART_TRUNK, inst)
    cy = by - (trunk_h + r * 0.8) * s
    cv.ellipse((bx - r * s, cy - r * s * 1.1, bx + r * s, cy + r * s * 1.1), VEGETATION, inst=inst)


def _sprite_pole(cv: _Canvas, cam: _Camera, x: float, z: float, side: int, rng: np.random.Generator) -> None:
    """A pole, optionally with traffic signs and/or a traffic light (each its own class)."""
    s = cam.scale(z)
    bx, by = cam.point(x, z)
    h = rng.uniform(3.0, 7.0)
    inst = cv.new_instance()
    cv.rect(bx - 0.07 * s, by - h * s, bx + 0.07 * s, by, POLE, inst=inst)
    kind = rng.random()
    if kind < 0.25:  # street lamp: an arm over the road
        arm = -side * rng.uniform(1.0, 2.5)
        cv.line([(bx, by - h * s), (bx + arm * s, by - h * s)], 0.12 * s, POLE, inst=inst)
        cv.rect(
            bx + arm * s - 0.25 * s,
            by - h * s,
            bx + arm * s + 0.25 * s,
            by - (h - 0.2) * s,
            POLE,
            PART_LIGHT,
            inst,
        )
    if 0.2 < kind < 0.75:  # one or two signs
        for k in range(1 + int(rng.random() < 0.3)):
            _sprite_sign(cv, bx, by - (min(h, 3.0) - 0.8 * k) * s, s, rng)
    if kind > 0.6:  # traffic light at the top, sometimes on an arm over the road
        lx = bx
        if rng.random() < 0.4:
            lx = bx - side * rng.uniform(1.5, 3.5) * s
            cv.line([(bx, by - h * s), (lx, by - h * s)], 0.12 * s, POLE, inst=inst)
        _sprite_light(cv, lx, by - h * s, s)


def _sprite_sign(cv: _Canvas, cx: float, cy: float, s: float, rng: np.random.Generator) -> None:
    r = rng.uniform(0.3, 0.45) * s
    inst = cv.new_instance()
    shape = int(rng.integers(4))
    if shape == 0:
        cv.ellipse((cx - r, cy - r, cx + r, cy + r), SIGN, inst=inst)
        cv.ellipse((cx - r * 0.6, cy - r * 0.6, cx + r * 0.6, cy + r * 0.6), SIGN, PART_LANE, inst)
    elif shape == 1:
        cv.polygon([(cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8), (cx, cy - r)], SIGN, inst=inst)
    elif shape == 2:
        cv.rect(cx - r * 1.3, cy - r * 0.8, cx + r * 1.3, cy + r * 0.8, SIGN, inst=inst)
    else:
        cv.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], SIGN, inst=inst)


def _sprite_light(cv: _Canvas, cx: float, top: float, s: float) -> None:
    w, h = 0.18 * s, 0.9 * s
    inst = cv.new_instance()
    cv.rect(cx - w, top, cx + w, top + h, LIGHT, inst=inst)
    lamp = max(w * 0.6, 0.5)
    for k in range(3):
        cy = top + h * (k + 0.5) / 3
        cv.ellipse(
            (cx - lamp, cy - lamp, cx + lamp, cy + lamp), LIGHT, PART_LAMP if k == 0 else PART_DARK, inst
        )


def _sprite_person(
    cv: _Canvas, cam: _Camera, x: float, z: float, cls: int, rng: np.random.Generator, seated_at: float = 0.0
) -> None:
    """A walking person (or, with seated_at > 0, a rider sitting at that height): head, torso, legs."""
    s = cam.scale(z)
    bx, by = cam.point(x, z)
    height = rng.uniform(1.6, 1.9)
    inst = cv.new_instance()
    hip = 0.9 if seated_at == 0 else seated_at
    shoulder = hip + (0.55 if seated_at == 0 else 0.6)
    lean = 0.0 if seated_at == 0 else rng.choice([-1.0, 1.0]) * 0.15
    # Legs: two slanted strokes (a stride), or down to the pedals for a rider.
    stride = rng.uniform(0.0, 0.3) if seated_at == 0 else 0.2
    leg_w = 0.16 * s
    for dx in (-stride, stride):
        cv.line(
            [(bx, by - hip * s), (bx + dx * s, by - 0.3 * s if seated_at else by)],
            leg_w,
            cls,
            PART_DARK,
            inst,
        )
    torso = [
        (bx - 0.2 * s, by - hip * s),
        (bx + 0.2 * s, by - hip * s),
        (bx + (0.2 + lean) * s, by - shoulder * s),
        (bx + (-0.2 + lean) * s, by - shoulder * s),
    ]
    cv.polygon(torso, cls, inst=inst)
    # Arms hang down for a pedestrian and reach forward to the handlebar for a rider.
    arm_end = (bx + 0.1 * s, by - (hip - 0.05) * s) if seated_at == 0 else (bx + 3 * lean * s, by - hip * s)
    cv.line([(bx + lean * s, by - shoulder * s), arm_end], 0.1 * s, cls, inst=inst)
    head_r = 0.12 * s
    hx, hy = bx + lean * s, by - (shoulder + (height - 0.9 - 0.55) * 0.5) * s
    cv.ellipse((hx - head_r, hy - head_r * 1.2, hx + head_r, hy + head_r * 1.2), cls, PART_SKIN, inst)


def _sprite_two_wheeler(
    cv: _Canvas, cam: _Camera, x: float, z: float, cls: int, rng: np.random.Generator, rider: bool
) -> None:
    """A bicycle or motorcycle in side view, optionally with a rider sitting on it."""
    s = cam.scale(z)
    bx, by = cam.point(x, z)
    inst = cv.new_instance()
    r = (0.34 if cls == BICYCLE else 0.32) * s
    half = (0.52 if cls == BICYCLE else 0.7) * s
    wheels = [(bx - half, by - r), (bx + half, by - r)]
    for wx, wy in wheels:
        if cls == BICYCLE:
            cv.ring((wx - r, wy - r, wx + r, wy + r), max(1, round(0.06 * s)), cls, PART_WHEEL, inst)
        else:
            cv.ellipse((wx - r, wy - r, wx + r, wy + r), cls, PART_WHEEL, inst)
    seat = (bx - 0.15 * s, by - 0.95 * s) if cls == BICYCLE else (bx - 0.1 * s, by - 0.8 * s)
    bar = (bx + half * 0.8, by - 1.0 * s)
    if cls == BICYCLE:  # a diamond frame
        frame = [wheels[0], seat, bar, wheels[1], (bx, by - r), wheels[0]]
        cv.line(frame, 0.06 * s, cls, inst=inst)
    else:  # engine block and tank
        cv.ellipse((bx - half * 0.8, by - 0.95 * s, bx + half * 0.8, by - 0.3 * s), cls, inst=inst)
        cv.line([(bx + half * 0.5, by - 0.8 * s), bar], 0.08 * s, cls, inst=inst)
    if rider:
        _sprite_person(cv, cam, x - 0.15, z, RIDER, rng, seated_at=0.95 if cls == BICYCLE else 0.85)


def _sprite_vehicle(
    cv: _Canvas, cam: _Camera, x: float, z: float, cls: int, rng: np.random.Generator
) -> None:
    """A vehicle seen from behind/front as a box: the side facing the centre line, then the end face."""
    w, h, length = {
        CAR: (rng.uniform(1.7, 2.0), rng.uniform(1.4, 1.7), rng.uniform(4.0, 4.8)),
        TRUCK: (2.4, rng.uniform(3.0, 3.8), rng.uniform(6.0, 9.0)),
        BUS: (2.5, rng.uniform(3.0, 3.3), rng.uniform(11.0, 13.0)),
        TRAIN: (2.6, 3.6, 30.0),
    }[cls]
    inst = cv.new_instance()
    body_h = h * 0.62 if cls == CAR else h
    # Visible side: the one facing the camera's centre line (none when straight ahead).
    side_x = x - w / 2 if x - w / 2 > 0 else (x + w / 2 if x + w / 2 < 0 else None)
    if side_x is not None:
        cv.polygon(cam.wall_quad(side_x, z, z + length, 0.25, body_h), cls, inst=inst)
        if cls == CAR:
            cabin = cam.wall_quad(side_x - np.sign(side_x) * 0.15, z + 1.0, z + length - 1.2, body_h, h)
            cv.polygon(cabin, cls, PART_GLASS, inst)
        else:  # a band of windows along the side (a truck's box has none, only its cab)
            z_win = (z + length - 2.0, z + length - 0.3) if cls == TRUCK else (z + 0.5, z + length - 0.5)
            cv.polygon(cam.wall_quad(side_x, z_win[0], z_win[1], h * 0.55, h * 0.85), cls, PART_GLASS, inst)
        for wz in (z + 0.8, z + length - 1.0):
            wx, wy = cam.point(side_x, wz, 0.33)
            r = 0.33 * cam.scale(wz)
            cv.ellipse((wx - r * 0.6, wy - r, wx + r * 0.6, wy + r), cls, PART_WHEEL, inst)
    # End face.
    s = cam.scale(z)
    x0, y0 = cam.point(x - w / 2, z, 0.0)
    x1, _ = cam.point(x + w / 2, z, 0.0)
    cv.rect(x0, y0 - body_h * s, x1, y0 - 0.2 * s, cls, inst=inst)
    cv.rect(x0 + 0.05 * s, y0 - 0.5 * s, x0 + 0.35 * s, y0, cls, PART_WHEEL, inst)
    cv.rect(x1 - 0.35 * s, y0 - 0.5 * s, x1 - 0.05 * s, y0, cls, PART_WHEEL, inst)
    if cls == CAR:
        inset = w * 0.12 * s
        cabin = [(x0 + inset, y0 - body_h * s), (x1 - inset, y0 - body_h * s)]
        cabin += [(x1 - 2 * inset, y0 - h * s), (x0 + 2 * inset, y0 - h * s)]
        cv.polygon(cabin, cls, inst=inst)
        cv.polygon([(a + (inset * 0.4 if i in (0, 3) else -inset * 0.4), b) for i, (a, b) in enumerate(cabin)],
                   cls, PART_GLASS, inst)  # fmt: skip
        cv.rect(x0 + 0.1 * s, y0 - 0.85 * s, x0 + 0.35 * s, y0 - 0.65 * s, cls, PART_LIGHT, inst)
        cv.rect(x1 - 0.35 * s, y0 - 0.85 * s, x1 - 0.1 * s, y0 - 0.65 * s, cls, PART_LIGHT, inst)
    elif cls in (BUS, TRAIN):
        cv.rect(x0 + 0.2 * s, y0 - h * 0.85 * s, x1 - 0.2 * s, y0 - h * 0.5 * s, cls, PART_GLASS, inst)
    else:  # truck: door seam and lights on the box's back
        cv.rect(
            (x0 + x1) / 2 - 0.03 * s,
            y0 - body_h * s,
            (x0 + x1) / 2 + 0.03 * s,
            y0 - 0.3 * s,
            cls,
            PART_DARK,
            inst,
        )
        cv.rect(x0 + 0.1 * s, y0 - 0.7 * s, x0 + 0.3 * s, y0 - 0.5 * s, cls, PART_LIGHT, inst)


def _sprite_static(cv: _Canvas, cam: _Camera, x: float, z: float, rng: np.random.Generator) -> None:
    """Void street furniture (bin, bollard, bench): labelId 'static', ignored in training and scoring."""
    s = cam.scale(z)
    bx, by = cam.point(x, z)
    w, h = rng.uniform(0.3, 1.2), rng.uniform(0.5, 1.1)
    cv.new_instance()
    cv.rect(bx - w / 2 * s, by - h * s, bx + w / 2 * s, by, VOID, PART_STATIC)


def _draw_ego_hood(cv: _Canvas, cam: _Camera, rng: np.random.Generator) -> None:
    """The recording car's bonnet at the bottom edge (Cityscapes' 'ego vehicle', labelId 1)."""
    h, w = cam.height, cam.width
    top = h * rng.uniform(0.88, 0.94)
    cv.new_instance()
    cv.ellipse((-0.2 * w, top, 1.2 * w, top + 2 * (h - top) + 0.3 * h), VOID, PART_EGO)


def _poisson(rng: np.random.Generator, mean: float) -> int:
    return int(rng.poisson(mean))


def sample_layout(rng: np.random.Generator, domain: str, height: int, width: int) -> Layout:
    """Sample the geometry of one street scene with the layout statistics of `domain`.

    domain: "source" or "target" (LAYOUT_STATS). Returns a Layout with (height, width) maps.
    """
    stats = LAYOUT_STATS[domain]
    hz = height * float(np.clip(rng.normal(stats.horizon_mean, stats.horizon_std), 0.25, 0.6))
    vx = width * rng.uniform(0.4, 0.6)
    cam = _Camera(height, width, hz, vx, stats.focal * width)
    road = rng.uniform(*stats.road_half_width)
    st = _Street(
        road=road,
        sidewalk=rng.uniform(*stats.sidewalk_width),
        verge=rng.uniform(1.0, 3.0) if rng.random() < 0.3 else 0.0,
        end=rng.uniform(60.0, 160.0),
        building_left=bool(rng.random() < stats.building_prob),
        building_right=bool(rng.random() < stats.building_prob),
    )
    cv = _Canvas(height, width)
    _draw_ground(cv, cam, st, rng)
    _draw_backdrop(cv, cam, st, rng)
    for side, has_buildings in ((-1, st.building_left), (1, st.building_right)):
        if not has_buildings:
            _draw_park(cv, cam, st, side, rng)
    _draw_facades(cv, cam, st, rng)
    for side in (-1, 1):
        if rng.random() < stats.wall_prob:
            _draw_barrier(cv, cam, st, side, WALL, rng)
        if rng.random() < stats.fence_prob:
            _draw_barrier(cv, cam, st, side, FENCE, rng)

    # Everything standing in front of the facades, drawn far to near so nearer objects occlude.
    z_min = cam.near_z() * 0.9
    objects: list[tuple[float, Callable[..., None], float, tuple[object, ...]]] = []

    def add(z: float, fn: Callable[..., None], x: float, *args: object) -> None:
        objects.append((z, fn, x, args))

    def sidewalk_x(side: int) -> float:
        return side * (st.road + st.verge + rng.uniform(0.3, st.sidewalk - 0.3))

    if rng.random() < stats.train_prob:  # a tram on rails in the middle of the road
        for rx in (-0.8, 0.7):
            cv.polygon(cam.ground_quad(rx, rx + 0.1, 0.3, st.end), ROAD, PART_RAIL)
        add(_log_depth(rng, z_min * 1.5, 40.0), _sprite_vehicle, rng.uniform(-1.0, 1.0), TRAIN, rng)
    vehicles = [CAR] * _poisson(rng, stats.cars) + [TRUCK] * _poisson(rng, stats.trucks)
    vehicles += [BUS] * _poisson(rng, stats.buses)
    for cls in vehicles:
        parked = cls == CAR and rng.random() < 0.4
        side = int(rng.choice([-1, 1]))
        x = side * (st.road - 1.2) if parked else rng.uniform(-st.road + 1.3, st.road - 1.3)
        # Big vehicles keep their distance, else one truck fills the frame and the class mix.
        add(_log_depth(rng, z_min * (1.2 if cls == CAR else 2.5), 50.0), _sprite_vehicle, x, cls, rng)
    for _ in range(_poisson(rng, stats.persons)):
        crossing = rng.random() < 0.15  # some pedestrians cross the road
        x = rng.uniform(-st.road, st.road) if crossing else sidewalk_x(int(rng.choice([-1, 1])))
        add(_log_depth(rng, z_min, 35.0), _sprite_person, x, PERSON, rng)
    for _ in range(_poisson(rng, stats.riders)):
        x = rng.choice([-1, 1]) * (st.road - rng.uniform(0.6, 1.5))
        cls = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        add(_log_depth(rng, z_min, 35.0), _sprite_two_wheeler, x, cls, rng, True)
    for _ in range(_poisson(rng, stats.parked_bicycles)):
        cls = BICYCLE if rng.random() < 0.75 else MOTORCYCLE
        add(
            _log_depth(rng, z_min, 30.0),
            _sprite_two_wheeler,
            sidewalk_x(int(rng.choice([-1, 1]))),
            cls,
            rng,
            False,
        )
    for _ in range(_poisson(rng, stats.trees)):
        side = int(rng.choice([-1, 1]))
        x = side * (st.road + st.verge / 2) if st.verge > 0 else side * (st.road + 0.6)
        add(_log_depth(rng, z_min * 1.2, 50.0), _sprite_tree, x, rng)
    for _ in range(_poisson(rng, stats.poles)):
        side = int(rng.choice([-1, 1]))
        add(_log_depth(rng, z_min * 1.1, 45.0), _sprite_pole, side * (st.road + 0.35), side, rng)
    for _ in range(_poisson(rng, stats.static_objects)):
        add(_log_depth(rng, z_min, 25.0), _sprite_static, sidewalk_x(int(rng.choice([-1, 1]))), rng)
    for z, fn, x, args in sorted(objects, key=lambda item: -item[0]):
        fn(cv, cam, x, z, *args)
    if rng.random() < stats.ego_hood_prob:
        _draw_ego_hood(cv, cam, rng)
    train_ids, parts, instances = cv.arrays()
    return Layout(train_ids=train_ids, parts=parts, instances=instances, horizon=hz)


# ---------------------------------------------------------------------------------------------------
# Appearance: paint a layout in a domain's style.
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# Writing the dataset.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """One image to write: which RNG stream, which domain statistics, which files."""

    stream: str  # "source", "target" or "val": the RNG stream
    domain: str  # layout statistics and style
    index: int
    image: str  # paths relative to the dataset root
    label: str
    palettised: bool  # GTA5 labels are "P" PNGs, Cityscapes ones "L"


def _cityscapes_stem(split: str, cities: tuple[str, ...], index: int) -> str:
    city = cities[index % len(cities)]
    return f"{split}/{city}/{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}"


def _tasks(n_source: int, n_target: int, n_val: int) -> list[_Task]:
    tasks = [
        _Task("source", "source", i, f"gta5/images/{i + 1:05d}.png", f"gta5/labels/{i + 1:05d}.png", True)
        for i in range(n_source)
    ]
    for stream, split, cities, n in (
        ("target", "train", TRAIN_CITIES, n_target),
        ("val", "val", VAL_CITIES, n_val),
    ):
        for i in range(n):
            stem = _cityscapes_stem(split, cities, i)
            tasks.append(
                _Task(
                    stream,
                    "target",
                    i,
                    f"cityscapes/leftImg8bit/{stem}_leftImg8bit.png",
                    f"cityscapes/gtFine/{stem}_gtFine_labelIds.png",
                    False,
                )
            )
    return tasks


def sample_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of image `index` in `stream` ("source", "target" or "val"): independent of order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_DOMAIN_CODES[stream], index)))


def _write_task(args: tuple[Path, int, tuple[int, int], _Task]) -> None:
    root, seed, (height, width), task = args
    rng = sample_rng(seed, task.stream, task.index)
    layout = sample_layout(rng, task.domain, height, width)
    image = render_appearance(layout, rng, STYLES[task.domain])
    label = Image.fromarray(layout.label_ids(), mode="L")
    if task.palettised:
        label.putpalette(LABEL_ID_PALETTE.tobytes())  # turns the "L" image into a "P" one
    for rel, im in ((task.image, Image.fromarray(image, mode="RGB")), (task.label, label)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, format="PNG")


def _manifest(seed: int, size: tuple[int, int], n_source: int, n_target: int, n_val: int) -> dict:
    return {
        "generator": "symda.data.synthcity",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": [size[0], size[1]],
        "counts": {"source": n_source, "target_train": n_target, "target_val": n_val},
        "cities": {"train": list(TRAIN_CITIES), "val": list(VAL_CITIES)},
        "styles": {name: asdict(style) for name, style in STYLES.items()},
        "layout_stats": {name: asdict(stats) for name, stats in LAYOUT_STATS.items()},
    }


def _normalise(obj: dict) -> dict:
    """Round-trip through JSON so tuples and lists compare equal."""
    return json.loads(json.dumps(obj))


def read_manifest(root: Path) -> dict | None:
    """The manifest of a SynthCity dataset at `root`, or None when there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def generate_synthcity(
    out: Path,
    seed: int = 0,
    size: tuple[int, int] = (128, 256),
    n_source: int = 1500,
    n_target: int = 1000,
    n_val: int = 250,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write a SynthCity dataset to `out` and return `out`.

    size: (H, W) of every image. Deterministic per seed, whatever `workers`. The dataset is built in a
    temporary sibling directory and moved into place at the end, so `out` is either complete or absent.
    If `out` already holds a dataset with the same manifest it is reused; anything else at `out` is an error.
    workers > 1 uses a 'spawn' process pool (safe next to torch threads), so a script that calls this at
    import level needs the usual `if __name__ == "__main__":` guard.
    """
    out = Path(out)
    expected = _normalise(_manifest(seed, size, n_source, n_target, n_val))
    if out.exists():
        _check_existing(out, expected)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        jobs = [(tmp, seed, (int(size[0]), int(size[1])), task) for task in _tasks(n_source, n_target, n_val)]
        bar = tqdm(total=len(jobs), desc=f"SynthCity -> {out}", unit="img", disable=not progress)
        if workers > 1 and len(jobs) > 1:
            # spawn: safe even when the caller has torch/OpenMP threads running (fork is not).
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_task, jobs, chunksize=16):
                    bar.update()
        else:
            for job in jobs:
                _write_task(job)
                bar.update()
        bar.close()
        (tmp / MANIFEST_NAME).write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        try:
            os.replace(tmp, out)
        except OSError:
            # Someone else finished the same dataset first: fine if it is the same one.
            if out.exists():
                _check_existing(out, expected)
                shutil.rmtree(tmp, ignore_errors=True)
                return out
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_existing(out: Path, expected: dict) -> None:
    found = read_manifest(out)
    if found is None:
        raise FileExistsError(
            f"{out} exists but is not a SynthCity dataset (no {MANIFEST_NAME}); remove it or pick another path"
        )
    if found != expected:
        keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        raise FileExistsError(
            f"{out} holds a different SynthCity dataset (manifest differs in {', '.join(keys)}); "
            "remove it or pick another path"
        )


# ---------------------------------------------------------------------------------------------------
# Looking at it.
# ---------------------------------------------------------------------------------------------------


def _read_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W, 3) colourised trainIds, read from disk as the loaders would."""
    image = np.asarray(Image.open(image_path).convert("RGB"))
    label_ids = np.asarray(Image.open(label_path))  # never convert: "P" values are the labelIds
    return image, colorize(label_ids_to_train_ids(label_ids))


def save_sample_grid(root: Path, out_png: Path, n: int = 4) -> Path:
    """A PNG of the first n source and n target-val pairs under `root`: rows of
    [source image | source label | target image | target label]. Returns out_png."""
    root, out_png = Path(root), Path(out_png)
    src = sorted((root / "gta5" / "images").glob("*.png"))[:n]
    tgt = sorted((root / "cityscapes" / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))[:n]
    if not src or not tgt:
        raise FileNotFoundError(f"{root} holds no SynthCity source/target-val images to show")
    rows = []
    for k in range(min(len(src), len(tgt))):
        s_img, s_lab = _read_pair(src[k], root / "gta5" / "labels" / src[k].name)
        t_lab_path = Path(
            str(tgt[k])
            .replace("leftImg8bit", "gtFine", 1)
            .replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        )
        t_img, t_lab = _read_pair(tgt[k], t_lab_path)
        gap = np.full((s_img.shape[0], 4, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([s_img, s_lab, gap, t_img, t_lab], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    grid = Image.fromarray(np.concatenate(rows[:-1], axis=0))
    header = Image.new("RGB", (grid.width, 14), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    draw.text((2, 1), "source (GTA5 layout): image | label", fill=(0, 0, 0))
    draw.text((grid.width // 2 + 4, 1), "target val (Cityscapes layout): image | label", fill=(0, 0, 0))
    canvas = Image.new("RGB", (grid.width, grid.height + header.height), (255, 255, 255))
    canvas.paste(header, (0, 0))
    canvas.paste(grid, (0, header.height))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png)
    return out_png
