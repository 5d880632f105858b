"""What a scene holds: the layout statistics of each domain and the scene grammar that samples a street.

`sample_layout` draws the geometry with the sprites of drawing.py on three (H, W) canvases: the
trainId map, a "part" map (windows, wheels, lane markings, ...; they only change appearance) and an
instance map (per-object colour jitter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symda.data.labels import NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from symda.data.synthcity.drawing import (
    BICYCLE,
    BUS,
    CAR,
    FENCE,
    MOTORCYCLE,
    PART_RAIL,
    PERSON,
    ROAD,
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

    def label_ids(self) -> np.ndarray:
        """(H, W) uint8 Cityscapes labelIds; void parts keep their own id (ego vehicle 1, static 4)."""
        lut = np.zeros(256, dtype=np.uint8)
        lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
        out = lut[self.train_ids]
        for part, label_id in VOID_PART_LABEL_ID.items():
            out[(self.train_ids == VOID) & (self.parts == part)] = label_id
        return out


def sample_layout(rng: np.random.Generator, domain: str, height: int, width: int) -> Layout:
    """Sample the geometry of one street scene with the layout statistics of `domain`.

    domain: "source" or "target" (LAYOUT_STATS). Returns a Layout with (height, width) maps.
    """
    stats = LAYOUT_STATS[domain]
    hz = height * float(np.clip(rng.normal(stats.horizon_mean, stats.horizon_std), 0.25, 0.6))
    vx = width * rng.uniform(0.4, 0.6)
    cam = Camera(height, width, hz, vx, stats.focal * width)
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
    draw_facades(cv, cam, st, rng)
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
        parked = cls == CAR and rng.random() < 0.4
        side = int(rng.choice([-1, 1]))
        x = side * (st.road - 1.2) if parked else rng.uniform(-st.road + 1.3, st.road - 1.3)
        # Big vehicles keep their distance, else one truck fills the frame and the class mix.
        add(log_depth(rng, z_min * (1.2 if cls == CAR else 2.5), 50.0), sprite_vehicle, x, cls, rng)
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
        add(log_depth(rng, z_min * 1.2, 50.0), sprite_tree, x, rng)
    for _ in range(poisson(rng, stats.poles)):
        side = int(rng.choice([-1, 1]))
        add(log_depth(rng, z_min * 1.1, 45.0), sprite_pole, side * (st.road + 0.35), side, rng)
    for _ in range(poisson(rng, stats.static_objects)):
        add(log_depth(rng, z_min, 25.0), sprite_static, sidewalk_x(int(rng.choice([-1, 1]))), rng)
    for z, fn, x, args in sorted(objects, key=lambda item: -item[0]):
        fn(cv, cam, x, z, *args)
    if rng.random() < stats.ego_hood_prob:
        draw_ego_hood(cv, cam, rng)
    train_ids, parts, instances = cv.arrays()
    return Layout(train_ids=train_ids, parts=parts, instances=instances, horizon=hz)
