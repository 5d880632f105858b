"""Drawing street-scene geometry: a camera, a street, canvases drawn in lock-step, and the sprites.

Everything here draws onto `Canvas` (trainIds, parts, instances, and for the renderers' physics the
depth and orientation of each surface and the sun's cast shadows on the ground); nothing here
decides what a scene holds (that is layout.py) or how it looks (appearance.py, look.py). Drawing
never draws random numbers for the extra canvases, so the v1 benchmark's bytes do not depend on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from symda.data.labels import IGNORE_INDEX

# trainIds, named for readability of the drawing code.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
VOID = IGNORE_INDEX

# Parts: sub-object materials that change the appearance only, never the class.
PART_NONE, PART_WINDOW, PART_GLASS, PART_WHEEL, PART_LANE, PART_LAMP, PART_SKIN, PART_DARK = range(8)
PART_TRUNK, PART_RAIL, PART_EGO, PART_STATIC, PART_LIGHT = range(8, 13)
# Void pixels keep a real Cityscapes labelId: the ego-vehicle hood is 1, street furniture 'static' is 4.
VOID_PART_LABEL_ID = {PART_EGO: 1, PART_STATIC: 4}

# Surface orientation (the `facing` canvas), for shading: up (ground), facing +x (a facade on the
# left of the street), facing -x, facing the camera (object ends, people, poles), round (tree crowns).
FACING_NONE, FACING_UP, FACING_RIGHT, FACING_LEFT, FACING_CAMERA, FACING_ROUND = range(6)
# The depth canvas holds metres for objects; GROUND_DEPTH marks the ground plane (depth from the row)
# and a negative value -|x| a vertical plane parallel to the street at lateral x (depth from the column).
GROUND_DEPTH, SKY_DEPTH = 0.0, 1.0e4


class Canvas:
    """PIL canvases drawn in lock-step: class, part, instance, depth and facing (`surface` sets the last
    two for what follows), plus a shadow canvas that only `shadow` draws on."""

    def __init__(self, height: int, width: int) -> None:
        self.images = [Image.new("L", (width, height), SKY), Image.new("L", (width, height), 0)]
        self.images.append(Image.new("L", (width, height), 0))
        self.images += [
            Image.new("F", (width, height), SKY_DEPTH),
            Image.new("L", (width, height), FACING_NONE),
        ]
        self.draws = [ImageDraw.Draw(im) for im in self.images]
        self.shadows = Image.new("L", (width, height), 0)
        self.instance = 0
        self.depth, self.facing = GROUND_DEPTH, FACING_UP

    def new_instance(self) -> int:
        self.instance = (self.instance + 1) % 256
        return self.instance

    def surface(self, depth: float, facing: int) -> None:
        """Depth (metres, GROUND_DEPTH or -|x| of a street-parallel plane) and facing of what is drawn next."""
        self.depth, self.facing = depth, facing

    def shadow(self, pts: list[tuple[float, float]]) -> None:
        """A cast shadow on the ground (image points); renderers apply it where the ground is visible."""
        ImageDraw.Draw(self.shadows).polygon(pts, fill=255)

    def _values(self, cls: int, part: int, inst: int | None) -> tuple[int, int, int, float, int]:
        return cls, part, self.instance if inst is None else inst, self.depth, self.facing

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
        """(train_ids, parts, instances), (H, W) uint8 each."""
        return tuple(np.asarray(im, dtype=np.uint8).copy() for im in self.images[:3])  # type: ignore[return-value]

    def physics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(depth code (H, W) float32, facing (H, W) uint8, cast shadow (H, W) float32 in [0, 1])."""
        depth = np.asarray(self.images[3], dtype=np.float32).copy()
        facing = np.asarray(self.images[4], dtype=np.uint8).copy()
        return depth, facing, np.asarray(self.shadows, dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Camera:
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
class Street:
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


def log_depth(rng: np.random.Generator, z_min: float, z_max: float) -> float:
    """Depth sampled log-uniformly: near objects are as frequent per octave as far ones."""
    return float(math.exp(rng.uniform(math.log(z_min), math.log(z_max))))


def draw_ground(cv: Canvas, cam: Camera, st: Street, rng: np.random.Generator) -> None:
    z0, z1 = 0.3, st.end
    cv.surface(GROUND_DEPTH, FACING_UP)
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


def draw_windows(
    cv: Canvas,
    cam: Camera,
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


def draw_facades(
    cv: Canvas, cam: Camera, st: Street, rng: np.random.Generator
) -> list[tuple[int, float, float, float]]:
    """Buildings along each side as vertical faces parallel to the street, far to near.

    Returns the blocks drawn as (side -1 | 1, z0, z1, height in metres), for their cast shadows.
    """
    placed = []
    for side, has_buildings in ((-1, st.building_left), (1, st.building_right)):
        x = side * st.facade
        if not has_buildings:
            continue
        cv.surface(-abs(x), FACING_RIGHT if side < 0 else FACING_LEFT)
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
            draw_windows(cv, cam, x, z0, z1, height, inst, rng)
        placed += [(side, z0, z1, height) for z0, z1, height in blocks]
    return placed


def draw_park(cv: Canvas, cam: Camera, st: Street, side: int, rng: np.random.Generator) -> None:
    """A side without buildings: grass beyond the sidewalk and a wall of tree crowns behind it."""
    x = side * st.facade
    cv.new_instance()
    cv.surface(GROUND_DEPTH, FACING_UP)
    cv.polygon(cam.ground_quad(min(x, x + side * 40), max(x, x + side * 40), 0.3, st.end), TERRAIN)
    depth = side * rng.uniform(6.0, 14.0)
    for _ in range(int(rng.integers(6, 12))):
        z = log_depth(rng, 3.0, st.end)
        r = rng.uniform(2.5, 5.0)
        cx, cy = cam.point(x + depth + side * r, z, rng.uniform(3.0, 6.0))
        s = cam.scale(z)
        cv.new_instance()
        cv.surface(z, FACING_ROUND)
        cv.ellipse((cx - r * s * 1.4, cy - r * s, cx + r * s * 1.4, cy + r * s), VEGETATION)
        cv.surface(z, FACING_CAMERA)
        cv.rect(cx - 0.2 * s, cy, cx + 0.2 * s, cam.point(0, z)[1], VEGETATION, PART_TRUNK)


def draw_backdrop(cv: Canvas, cam: Camera, st: Street, rng: np.random.Generator) -> None:
    """What closes the street far away: a row of buildings or of trees across the vanishing point."""
    cv.surface(st.end, FACING_CAMERA)
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


def draw_barrier(cv: Canvas, cam: Camera, st: Street, side: int, cls: int, rng: np.random.Generator) -> None:
    """A wall or fence segment along the outer edge of the sidewalk."""
    x = side * (st.facade - 0.3)
    z0 = log_depth(rng, 2.0, 25.0)
    z1 = z0 + rng.uniform(5.0, 25.0)
    h = rng.uniform(0.8, 2.2) if cls == WALL else rng.uniform(0.9, 1.8)
    cv.surface(-abs(x), FACING_RIGHT if side < 0 else FACING_LEFT)
    inst = cv.new_instance()
    cv.polygon(cam.wall_quad(x, z0, z1, 0.0, h), cls, inst=inst)
    if cls == FENCE:  # posts and a top rail make a fence a fence, whatever its colour
        z = z0
        while z < z1 and cam.scale(z) * 0.1 > 0.3:
            cv.polygon(cam.wall_quad(x, z, z + 0.12, 0.0, h), FENCE, PART_DARK, inst)
            z += rng.uniform(1.2, 2.5)
        cv.polygon(cam.wall_quad(x, z0, z1, h - 0.12, h), FENCE, PART_DARK, inst)


def sprite_tree(
    cv: Canvas, cam: Camera, x: float, z: float, rng: np.random.Generator, variety: float = 0.0
) -> None:
    """A street tree; with probability `variety` a conifer-like cone instead of a round crown."""
    s = cam.scale(z)
    trunk_h, r = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.8)
    if variety and rng.random() < variety:
        bx, by = cam.point(x, z)
        inst = cv.new_instance()
        cv.rect(bx - 0.12 * s, by - trunk_h * 0.6 * s, bx + 0.12 * s, by, VEGETATION, PART_TRUNK, inst)
        top = by - (trunk_h + 2.6 * r) * s
        cv.surface(z, FACING_ROUND)
        cv.polygon([(bx - r * 0.9 * s, by - trunk_h * 0.5 * s), (bx + r * 0.9 * s, by - trunk_h * 0.5 * s),
                    (bx, top)], VEGETATION, inst=inst)  # fmt: skip
        return
    bx, by = cam.point(x, z)
    inst = cv.new_instance()
    # Cityscapes labels trunks as vegetation too.
    cv.rect(bx - 0.15 * s, by - trunk_h * s, bx + 0.15 * s, by, VEGETATION, PART_TRUNK, inst)
    cy = by - (trunk_h + r * 0.8) * s
    cv.surface(z, FACING_ROUND)
    cv.ellipse((bx - r * s, cy - r * s * 1.1, bx + r * s, cy + r * s * 1.1), VEGETATION, inst=inst)


def sprite_pole(cv: Canvas, cam: Camera, x: float, z: float, side: int, rng: np.random.Generator) -> None:
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
            sprite_sign(cv, bx, by - (min(h, 3.0) - 0.8 * k) * s, s, rng)
    if kind > 0.6:  # traffic light at the top, sometimes on an arm over the road
        lx = bx
        if rng.random() < 0.4:
            lx = bx - side * rng.uniform(1.5, 3.5) * s
            cv.line([(bx, by - h * s), (lx, by - h * s)], 0.12 * s, POLE, inst=inst)
        sprite_light(cv, lx, by - h * s, s)


def sprite_sign(cv: Canvas, cx: float, cy: float, s: float, rng: np.random.Generator) -> None:
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


def sprite_light(cv: Canvas, cx: float, top: float, s: float) -> None:
    w, h = 0.18 * s, 0.9 * s
    inst = cv.new_instance()
    cv.rect(cx - w, top, cx + w, top + h, LIGHT, inst=inst)
    lamp = max(w * 0.6, 0.5)
    for k in range(3):
        cy = top + h * (k + 0.5) / 3
        cv.ellipse(
            (cx - lamp, cy - lamp, cx + lamp, cy + lamp), LIGHT, PART_LAMP if k == 0 else PART_DARK, inst
        )


def sprite_person(
    cv: Canvas, cam: Camera, x: float, z: float, cls: int, rng: np.random.Generator, seated_at: float = 0.0
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


def sprite_two_wheeler(
    cv: Canvas, cam: Camera, x: float, z: float, cls: int, rng: np.random.Generator, rider: bool
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
        sprite_person(cv, cam, x - 0.15, z, RIDER, rng, seated_at=0.95 if cls == BICYCLE else 0.85)


def sprite_vehicle(
    cv: Canvas, cam: Camera, x: float, z: float, cls: int, rng: np.random.Generator, variety: float = 0.0
) -> None:
    """A vehicle seen from behind/front as a box: the side facing the centre line, then the end face.

    With probability `variety` a car is another body: a tall van / SUV or a short hatchback.
    """
    w, h, length = {
        CAR: (rng.uniform(1.7, 2.0), rng.uniform(1.4, 1.7), rng.uniform(4.0, 4.8)),
        TRUCK: (2.4, rng.uniform(3.0, 3.8), rng.uniform(6.0, 9.0)),
        BUS: (2.5, rng.uniform(3.0, 3.3), rng.uniform(11.0, 13.0)),
        TRAIN: (2.6, 3.6, 30.0),
    }[cls]
    if cls == CAR and variety and rng.random() < variety:
        if rng.random() < 0.5:  # van / SUV
            w, h, length = rng.uniform(1.9, 2.1), rng.uniform(1.8, 2.2), rng.uniform(4.6, 5.3)
        else:  # hatchback
            w, h, length = rng.uniform(1.6, 1.75), rng.uniform(1.4, 1.55), rng.uniform(3.5, 4.0)
    inst = cv.new_instance()
    body_h = h * 0.62 if cls == CAR else h
    # Visible side: the one facing the camera's centre line (none when straight ahead).
    side_x = x - w / 2 if x - w / 2 > 0 else (x + w / 2 if x + w / 2 < 0 else None)
    if side_x is not None:
        cv.surface(-abs(side_x), FACING_LEFT if side_x > 0 else FACING_RIGHT)
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
    cv.surface(z, FACING_CAMERA)
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


def sprite_static(cv: Canvas, cam: Camera, x: float, z: float, rng: np.random.Generator) -> None:
    """Void street furniture (bin, bollard, bench): labelId 'static', ignored in training and scoring."""
    s = cam.scale(z)
    bx, by = cam.point(x, z)
    w, h = rng.uniform(0.3, 1.2), rng.uniform(0.5, 1.1)
    cv.new_instance()
    cv.rect(bx - w / 2 * s, by - h * s, bx + w / 2 * s, by, VOID, PART_STATIC)


def draw_ego_hood(cv: Canvas, cam: Camera, rng: np.random.Generator) -> None:
    """The recording car's bonnet at the bottom edge (Cityscapes' 'ego vehicle', labelId 1)."""
    h, w = cam.height, cam.width
    top = h * rng.uniform(0.88, 0.94)
    cv.new_instance()
    cv.surface(1.0, FACING_UP)
    cv.ellipse((-0.2 * w, top, 1.2 * w, top + 2 * (h - top) + 0.3 * h), VOID, PART_EGO)


def poisson(rng: np.random.Generator, mean: float) -> int:
    return int(rng.poisson(mean))
