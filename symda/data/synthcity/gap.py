"""The v2 domain gap as named factors, each with a strength (`synth.gap.<factor>`, 0 to 1).

Strength 0 makes the target equal to the source in that factor; 1 is the benchmark's full gap in it.
Every factor stands for a real difference between GTA5 and Cityscapes:

- tone: a game engine's saturated, high-contrast, haze-free look against a photograph's grading
  (white-balance cast, lower saturation, a camera's tone curve with lifted blacks) and aerial haze
  that grows with distance, so the map from source to target colours differs pixel by pixel;
- texture: class-conditional surface statistics from other families (game asphalt grain, tiled
  paving, brick facades, blobby foliage, flat paint against worn asphalt with cracks and patches,
  cobbles, stained plaster, leafy foliage with gaps, glossy paint, clouds);
- illumination: hard sun with cast shadows and shaded faces against overcast, diffuse light with a
  grey sky; which domain is the sunny one alternates with the seed (even: the source);
- sensor: Cityscapes' camera (signal-dependent noise, defocus, motion blur, vignetting, compression
  artefacts, the ego car's bonnet) against a clean render;
- layout: camera height, pitch and field of view, class frequencies (more parked cars, people and
  wider sidewalks in the target), and body shapes the source never shows (vans, hatchbacks, conifers).

`domain_specs(seed, gap)` turns the strengths into each domain's LayoutStats and Look: each target
parameter is the source's moved the strength's fraction of the way to its full-gap value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from symda.data.synthcity.layout import LayoutStats
from symda.data.synthcity.look import Look

from symda.config import SynthGapConfig

GAP_FACTORS = tuple(f.name for f in dataclasses.fields(SynthGapConfig))  # the config's synth.gap keys

# Which Look / LayoutStats fields each factor moves.
_LOOK_FACTOR = {
    "saturation": "tone", "contrast": "tone", "tone_curve": "tone", "white_balance": "tone",
    "white_balance_jitter": "tone", "haze": "tone", "haze_colour": "tone",
    "texture": "texture",
    "sun": "illumination", "ambient": "illumination", "shadow_blur": "illumination", "overcast_sky": "illumination",
    "shot_noise": "sensor", "read_noise": "sensor", "defocus": "sensor", "motion_blur": "sensor",
    "vignette": "sensor", "jpeg_quality": "sensor", "exposure_jitter": "sensor", "instance_jitter": "texture",
}  # fmt: skip
_LAYOUT_FACTOR = {"ego_hood_prob": "sensor"}  # the bonnet is the recording car's: part of the camera rig

SUNNY = {"sun": 0.75, "ambient": 0.42, "shadow_blur": 0.0, "overcast_sky": 0.0}
OVERCAST = {"sun": 0.12, "ambient": 0.6, "shadow_blur": 0.03, "overcast_sky": 1.0}

# The source: a game engine's render.
SOURCE_LOOK = Look(
    saturation=1.3, contrast=1.15, tone_curve=0.0, white_balance=(1.0, 1.0, 1.0), white_balance_jitter=0.0,
    haze=0.0, haze_colour=(0.75, 0.78, 0.82), texture=0.0, **SUNNY,
    shot_noise=0.0, read_noise=0.004, defocus=0.0, motion_blur=0.0, vignette=0.0, jpeg_quality=0,
    exposure_jitter=0.08,
)  # fmt: skip
# The target at full strength in every factor: a street photograph.
TARGET_LOOK = Look(
    saturation=0.88, contrast=1.05, tone_curve=0.6, white_balance=(1.0, 1.02, 0.94), white_balance_jitter=0.04,
    haze=0.003, haze_colour=(0.64, 0.67, 0.68), texture=1.0, **OVERCAST,
    shot_noise=0.002, read_noise=0.006, defocus=0.0015, motion_blur=0.004, vignette=0.2, jpeg_quality=75,
    exposure_jitter=0.15,
)  # fmt: skip

SOURCE_LAYOUT = LayoutStats(
    horizon_mean=0.38, horizon_std=0.05, focal=0.7, road_half_width=(4.0, 7.5), sidewalk_width=(3.0, 6.0),
    building_prob=0.85, cars=5.0, trucks=0.5, buses=0.3, train_prob=0.06, persons=5.0, riders=0.8,
    parked_bicycles=0.8, trees=3.0, poles=4.0, fence_prob=0.3, wall_prob=0.35, static_objects=1.0,
    ego_hood_prob=0.0, cam_height=1.9, parked_car_prob=0.3, shape_variety=0.0, sun=True,
)  # fmt: skip
TARGET_LAYOUT = LayoutStats(
    horizon_mean=0.46, horizon_std=0.03, focal=0.9, road_half_width=(3.5, 6.0), sidewalk_width=(4.5, 8.5),
    building_prob=0.75, cars=6.0, trucks=0.3, buses=0.2, train_prob=0.05, persons=9.0, riders=1.2,
    parked_bicycles=1.6, trees=4.5, poles=5.0, fence_prob=0.4, wall_prob=0.25, static_objects=1.5,
    ego_hood_prob=0.6, cam_height=1.3, parked_car_prob=0.6, shape_variety=0.5, sun=True,
)  # fmt: skip


@dataclass(frozen=True)
class DomainSpec:
    """Everything that defines one domain of v2: what its scenes hold and how they look."""

    layout: LayoutStats
    look: Look


def _lerp(a: Any, b: Any, s: float) -> Any:
    if isinstance(a, bool):
        return a if s < 0.5 else b
    if isinstance(a, tuple):
        return tuple(_lerp(x, y, s) for x, y in zip(a, b, strict=True))
    if isinstance(a, int):
        return round(a + s * (b - a))
    return a + s * (b - a)


def _moved(source: Any, target: Any, factor_of: dict[str, str], default: str, gap: dict[str, float]) -> Any:
    """`source` with each field moved towards `target` by the strength of the factor it belongs to."""
    values = {}
    for f in dataclasses.fields(source):
        strength = gap[factor_of.get(f.name, default)]
        values[f.name] = _lerp(getattr(source, f.name), getattr(target, f.name), strength)
    return dataclasses.replace(source, **values)


def domain_specs(seed: int, gap: dict[str, float]) -> dict[str, DomainSpec]:
    """{"source": ..., "target": ...} of the v2 benchmark for these factor strengths (GAP_FACTORS).

    JPEG compression switches on with any sensor strength (its quality moves from 100 down).
    """
    if set(gap) != set(GAP_FACTORS):
        raise ValueError(f"gap: expected strengths for {list(GAP_FACTORS)}, got {sorted(gap)}")
    sunny_source = seed % 2 == 0
    source_look = dataclasses.replace(SOURCE_LOOK, **(SUNNY if sunny_source else OVERCAST))
    full_target = dataclasses.replace(TARGET_LOOK, **(OVERCAST if sunny_source else SUNNY))
    look = _moved(dataclasses.replace(source_look, jpeg_quality=100), full_target, _LOOK_FACTOR, "tone", gap)
    if gap["sensor"] == 0:
        look = dataclasses.replace(look, jpeg_quality=0)
    layout = _moved(SOURCE_LAYOUT, TARGET_LAYOUT, _LAYOUT_FACTOR, "layout", gap)
    return {"source": DomainSpec(SOURCE_LAYOUT, source_look), "target": DomainSpec(layout, look)}
