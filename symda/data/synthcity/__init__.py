"""SynthCity: the embedded GTA5 -> Cityscapes stand-in benchmark.

Real GTA5 and Cityscapes are large and licensed, so the project generates its own domain pair of
street scenes and writes it in the real datasets' on-disk formats, so that the real loaders read it:

    OUT/gta5/images/00001.png                    RGB, source style
    OUT/gta5/labels/00001.png                    palettised ("P") PNG of Cityscapes labelIds
    OUT/cityscapes/leftImg8bit/{train,val}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    OUT/cityscapes/gtFine/{train,val}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png   ("L")
    OUT/synthcity.json                           manifest: version, preset, seed, size, counts, the gap

A scene is made in two independent steps, so that the same layout can be rendered in either style:
1. layout.py samples the geometry (drawing.py draws it, with depth, surface orientation and the sun's
   cast shadows): what the scene holds, with per-domain statistics;
2. a renderer paints it: look.py for the v2 preset (the default), whose domain gap is five named
   factors with strengths (gap.py: tone, texture, illumination, sensor, layout); appearance.py for
   v1 (symda 0.1's benchmark: a global, learnable colour map plus texture scale and camera effects).

The styles and layout statistics are part of the benchmark's definition (frozen; v2's at the given
strengths); the seed only samples scenes and jitter (and, in v2, which domain is the sunny one). Every image's generator is derived from (seed, domain, index), so the
bytes written do not depend on the number of worker processes. writing.py writes it all.
"""

from symda.data.synthcity.appearance import (
    SOURCE_STYLE,
    STYLES,
    TARGET_STYLE,
    render_appearance,
    render_scene,
)
from symda.data.synthcity.layout import LAYOUT_STATS, Layout, sample_layout
from symda.data.synthcity.writing import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TRAIN_CITIES,
    VAL_CITIES,
    generate_synthcity,
    manifest_flags,
    read_manifest,
    sample_rng,
    save_sample_grid,
)

__all__ = [
    "GENERATOR_VERSION", "LAYOUT_STATS", "MANIFEST_NAME", "SOURCE_STYLE", "STYLES", "TARGET_STYLE", "TRAIN_CITIES",
    "VAL_CITIES", "Layout", "generate_synthcity", "manifest_flags", "read_manifest", "render_appearance", "render_scene",
    "sample_layout", "sample_rng", "save_sample_grid",
]  # fmt: skip
