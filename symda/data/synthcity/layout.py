"""What a scene holds: the layout statistics of each domain and the scene grammar that samples a street.

`sample_layout` draws the geometry with the sprites of drawing.py on three (H, W) canvases: the
trainId map, a "part" map (windows, wheels, lane markings, ...; they only change appearance) and an
instance map (per-object colour jitter).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symda.data.labels import NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from symda.data.synthcity.drawing import (
    BICYCLE,
    BUS,
    CAR,
    FACING_CAMERA,
    FENCE,
    GROUND_DEPTH,
    MOTORCYCLE,
    PART_RAIL,
    PERSON,
    ROAD,
    SKY_DEPTH,
    TRAIN,
    TRUCK,
    VOID,
    VOID_PART_LABEL_ID,
    WALL,
    Camera,
    Canvas,
    Street,
    draw_backdrop,
    draw_barrier,
    draw_ego_hood,
    draw_facades,
    draw_ground,
    draw_park,
    log_depth,
    poisson,
    sprite_person,
    sprite_pole,
    sprite_static,
    sprite_tree,
    sprite_two_wheeler,
    sprite_vehicle,
)  # fmt: skip


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
    # Added with the v2 benchmark; the defaults are what v1 drew (and v1's manifest leaves them out).
    cam_height: float = 1.5  # metres above the road
    parked_car_prob: float = 0.4  # a car parks at the kerb instead of driving
    shape_variety: float = 0.0  # chance of another body shape (vans and hatchbacks, conical trees, children)
    sun: bool = False  # sample a sun direction and draw its cast shadows on the ground


V1_LAYOUT_FIELDS = (
    "horizon_mean", "horizon_std", "focal", "road_half_width", "sidewalk_width", "building_prob", "cars", "trucks",
    "buses", "train_prob", "persons", "riders", "parked_bicycles", "trees", "poles", "fence_prob", "wall_prob",
    "static_objects", "ego_hood_prob",
)  # fmt: skip


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
    # For the v2 renderer: (H, W) float32 depth in metres (SKY_DEPTH for the sky), (H, W) uint8
    # surface orientation (FACING_*), (H, W) float32 cast shadow on the ground in [0, 1], and the
    # unit vector towards the sun (x right, y up, z forward) when the layout has one.
    depth: np.ndarray | None = None
    facing: np.ndarray | None = None
    shadow: np.ndarray | None = None
    sun: tuple[float, float, float] | None = None

    def label_ids(self) -> np.ndarray:
        """(H, W) uint8 Cityscapes labelIds; void parts keep their own id (ego vehicle 1, static 4)."""
        lut = np.zeros(256, dtype=np.uint8)
        lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
        out = lut[self.train_ids]
        for part, label_id in VOID_PART_LABEL_ID.items():
            out[(self.train_ids == VOID) & (self.parts == part)] = label_id
        return out


def sample_layout(rng: np.random.Generator, domain: str | LayoutStats, height: int, width: int) -> Layout:
    """Sample the geometry of one street scene with the layout statistics of `domain`.

    domain: "source" or "target" (v1's LAYOUT_STATS), or the LayoutStats themselves. Returns a Layout
    with (height, width) maps.
    """
    stats = LAYOUT_STATS[domain] if isinstance(domain, str) else domain
    hz = height * float(np.clip(rng.normal(stats.horizon_mean, stats.horizon_std), 0.25, 0.6))
    vx = width * rng.uniform(0.4, 0.6)
    cam = Camera(height, width, hz, vx, stats.focal * width, stats.cam_height)
    road = rng.uniform(*stats.road_half_width)
    st = Street(
        road=road,
        sidewalk=rng.uniform(*stats.sidewalk_width),
        verge=rng.uniform(1.0, 3.0) if rng.random() < 0.3 else 0.0,
        end=rng.uniform(60.0, 160.0),
        building_left=bool(rng.random() < stats.building_prob),
        building_right=bool(rng.random() < stats.building_prob),
    )
    cv = Canvas(height, width)
    draw_ground(cv, cam, st, rng)
    draw_backdrop(cv, cam, st, rng)
    for side, has_buildings in ((-1, st.building_left), (1, st.building_right)):
        if not has_buildings:
            draw_park(cv, cam, st, side, rng)
    blocks = draw_facades(cv, cam, st, rng)
    for side in (-1, 1):
        if rng.random() < stats.wall_prob:
            draw_barrier(cv, cam, st, side, WALL, rng)
        if rng.random() < stats.fence_prob:
            draw_barrier(cv, cam, st, side, FENCE, rng)

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
        add(log_depth(rng, z_min * 1.5, 40.0), sprite_vehicle, rng.uniform(-1.0, 1.0), TRAIN, rng)
    vehicles = [CAR] * poisson(rng, stats.cars) + [TRUCK] * poisson(rng, stats.trucks)
    vehicles += [BUS] * poisson(rng, stats.buses)
    for cls in vehicles:
        parked = cls == CAR and rng.random() < stats.parked_car_prob
        side = int(rng.choice([-1, 1]))
        x = side * (st.road - 1.2) if parked else rng.uniform(-st.road + 1.3, st.road - 1.3)
        # Big vehicles keep their distance, else one truck fills the frame and the class mix.
        add(log_depth(rng, z_min * (1.2 if cls == CAR else 2.5), 50.0), sprite_vehicle, x, cls, rng,
            stats.shape_variety)  # fmt: skip
    for _ in range(poisson(rng, stats.persons)):
        crossing = rng.random() < 0.15  # some pedestrians cross the road
        x = rng.uniform(-st.road, st.road) if crossing else sidewalk_x(int(rng.choice([-1, 1])))
        add(log_depth(rng, z_min, 35.0), sprite_person, x, PERSON, rng)
    for _ in range(poisson(rng, stats.riders)):
        x = rng.choice([-1, 1]) * (st.road - rng.uniform(0.6, 1.5))
        cls = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        add(log_depth(rng, z_min, 35.0), sprite_two_wheeler, x, cls, rng, True)
    for _ in range(poisson(rng, stats.parked_bicycles)):
        cls = BICYCLE if rng.random() < 0.75 else MOTORCYCLE
        add(
            log_depth(rng, z_min, 30.0),
            sprite_two_wheeler,
            sidewalk_x(int(rng.choice([-1, 1]))),
            cls,
            rng,
            False,
        )
    for _ in range(poisson(rng, stats.trees)):
        side = int(rng.choice([-1, 1]))
        x = side * (st.road + st.verge / 2) if st.verge > 0 else side * (st.road + 0.6)
        add(log_depth(rng, z_min * 1.2, 50.0), sprite_tree, x, rng, stats.shape_variety)
    for _ in range(poisson(rng, stats.poles)):
        side = int(rng.choice([-1, 1]))
        add(log_depth(rng, z_min * 1.1, 45.0), sprite_pole, side * (st.road + 0.35), side, rng)
    for _ in range(poisson(rng, stats.static_objects)):
        add(log_depth(rng, z_min, 25.0), sprite_static, sidewalk_x(int(rng.choice([-1, 1]))), rng)
    for z, fn, x, args in sorted(objects, key=lambda item: -item[0]):
        cv.surface(z, FACING_CAMERA)
        fn(cv, cam, x, z, *args)
    if rng.random() < stats.ego_hood_prob:
        draw_ego_hood(cv, cam, rng)
    sun = None
    if stats.sun:  # drawn last, so the scene itself is the one the same seed gives without a sun
        azimuth, elevation = rng.uniform(-math.pi, math.pi), rng.uniform(math.radians(20), math.radians(60))
        sun = (
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        )
        draw_cast_shadows(cv, cam, st, blocks, objects, sun)
    train_ids, parts, instances = cv.arrays()
    depth_code, facing, shadow = cv.physics()
    return Layout(train_ids=train_ids, parts=parts, instances=instances, horizon=hz,
                  depth=resolve_depth(depth_code, cam), facing=facing, shadow=shadow, sun=sun)  # fmt: skip


def resolve_depth(code: np.ndarray, cam: Camera) -> np.ndarray:
    """The depth canvas's codes as metres: the ground plane from the row, street-parallel planes from
    the column, objects as drawn; (H, W) float32, SKY_DEPTH where nothing was drawn."""
    rows = np.arange(cam.height, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(cam.width, dtype=np.float32)[None, :] + 0.5
    ground = np.where(rows > cam.hz + 0.5, cam.cam_h * cam.focal / np.maximum(rows - cam.hz, 0.5), SKY_DEPTH)
    plane = -code * cam.focal / np.maximum(np.abs(cols - cam.vx), 0.5)
    depth = np.where(code == GROUND_DEPTH, ground, np.where(code < 0, plane, code))
    return np.minimum(depth, SKY_DEPTH).astype(np.float32)


# Cast shadows: (height, footprint width, footprint length) in metres of what stands on the ground, by
# the sprite that drew it (by class for the sprites that draw several classes).
_SHADOW_BOX = {CAR: (1.5, 1.8, 4.4), TRUCK: (3.4, 2.4, 7.5), BUS: (3.1, 2.5, 12.0), TRAIN: (3.6, 2.6, 30.0),
               PERSON: (1.75, 0.5, 0.4), sprite_tree: (5.0, 2.5, 2.5), sprite_pole: (5.5, 0.25, 0.25),
               sprite_two_wheeler: (1.5, 0.5, 1.6)}  # fmt: skip
_BOX_BY_CLASS = (sprite_vehicle, sprite_person)


def draw_cast_shadows(
    cv: Canvas,
    cam: Camera,
    st: Street,
    blocks: list[tuple[int, float, float, float]],
    objects: list[tuple[float, Callable[..., None], float, tuple[object, ...]]],
    sun: tuple[float, float, float],
) -> None:
    """The sun's shadows on the ground: of each building block and of each object standing in the street.

    A vertical edge of height h at ground point (x, z) casts its shadow to (x, z) - h cot(elevation) *
    (sun_x, sun_z) / |(sun_x, sun_z)|; a box's shadow is the hull of its footprint and that footprint
    moved so.
    """
    reach = (-sun[0] / max(sun[1], 1e-3), -sun[2] / max(sun[1], 1e-3))  # ground shift per metre of height

    def draw(points: list[tuple[float, float]]) -> None:
        hull = _convex_hull([(x, max(z, 0.3)) for x, z in points])
        if len(hull) >= 3:
            cv.shadow([cam.point(x, z) for x, z in hull])

    def box(x0: float, x1: float, z0: float, z1: float, h: float) -> None:
        foot = [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]
        draw(foot + [(x + h * reach[0], z + h * reach[1]) for x, z in foot])

    for side, z0, z1, h in blocks:
        x = side * st.facade
        if side * reach[0] < 0:  # the shadow falls towards the street, not behind the facade
            box(x, x, z0, z1, h)
    for z, fn, x, args in objects:
        kind = args[0] if fn in _BOX_BY_CLASS else fn
        if kind not in _SHADOW_BOX:
            continue
        h, w, length = _SHADOW_BOX[kind]
        box(x - w / 2, x + w / 2, z, z + length, h)


def _convex_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Andrew's monotone chain; the hull in counter-clockwise order."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]
