"""SynthCity: determinism, on-disk layouts, label encodings, atomic writes and the style split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from symda.data import synthcity as sc
from symda.data.synthcity.gap import GAP_FACTORS, domain_specs
from symda.data.synthcity.look import render_look
from symda.data.labels import KNOWN_LABEL_IDS, NUM_CLASSES, label_ids_to_train_ids

SIZE = (32, 64)
COUNTS = {"n_source": 3, "n_target": 4, "n_val": 2}


def _digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sc") / "synthcity"
    return sc.generate_synthcity(root, seed=3, size=SIZE, workers=1, progress=False, **COUNTS)


def test_layout_on_disk(dataset: Path) -> None:
    files = set(_digest(dataset))
    expected = {"synthcity.json"}
    expected |= {f"gta5/{d}/{i:05d}.png" for d in ("images", "labels") for i in (1, 2, 3)}
    for split, cities, n in (("train", sc.TRAIN_CITIES, 4), ("val", sc.VAL_CITIES, 2)):
        for i in range(n):
            city = cities[i % len(cities)]
            stem = f"{city}/{city}_{i // len(cities):06d}_000019"
            expected.add(f"cityscapes/leftImg8bit/{split}/{stem}_leftImg8bit.png")
            expected.add(f"cityscapes/gtFine/{split}/{stem}_gtFine_labelIds.png")
    assert files == expected
    assert not list(dataset.parent.glob(".synthcity.tmp-*"))  # the temporary build dir is gone


def test_images_and_label_encodings(dataset: Path) -> None:
    for path in dataset.rglob("*.png"):
        im = Image.open(path)
        assert im.size == (SIZE[1], SIZE[0]), path
        if "images" in path.parts or "leftImg8bit" in path.parts:
            assert im.mode == "RGB", path
            continue
        # GTA5 labels are palettised, Cityscapes labels greyscale; both hold Cityscapes labelIds.
        assert im.mode == ("P" if "gta5" in path.parts else "L"), path
        values = set(np.unique(np.asarray(im)).tolist())
        assert values <= KNOWN_LABEL_IDS, (path, values - KNOWN_LABEL_IDS)


def test_manifest(dataset: Path) -> None:
    manifest = json.loads((dataset / "synthcity.json").read_text())
    assert manifest["seed"] == 3 and manifest["size"] == list(SIZE)
    assert manifest["counts"] == {"source": 3, "target_train": 4, "target_val": 2}
    assert manifest["preset"] == "v2" and manifest["gap"] == {f: 1.0 for f in GAP_FACTORS}
    assert set(manifest["domains"]) == {"source", "target"}


# Pixels of symda 0.1's SynthCity (seed 3, 32x64, 3/4/2 images): the v1 preset reproduces them exactly.
V1_PIXELS = {
    "gta5/images/00002.png": "ba6092d46ba0cfe8",
    "gta5/labels/00002.png": "f32265a1689d0024",
    "cityscapes/leftImg8bit/val/elmsford/elmsford_000000_000019_leftImg8bit.png": "9205c6cca25f2f31",
}


def test_the_v1_preset_is_symda_0_1s_benchmark(tmp_path: Path) -> None:
    root = sc.generate_synthcity(tmp_path / "v1", seed=3, size=SIZE, workers=1, progress=False, preset="v1",
                                 **COUNTS)  # fmt: skip
    pixels = {rel: hashlib.sha256(np.asarray(Image.open(root / rel)).tobytes()).hexdigest()[:16] for rel in V1_PIXELS}
    assert pixels == V1_PIXELS
    manifest = json.loads((root / "synthcity.json").read_text())
    assert manifest["version"] == 1 and set(manifest["styles"]) == {"source", "target"} and "preset" not in manifest
    with pytest.raises(FileExistsError, match="synth.preset"):  # a v2 run never reuses (or touches) v1 data
        sc.generate_synthcity(root, seed=3, size=SIZE, workers=1, progress=False, **COUNTS)


def test_without_a_gap_the_target_is_the_source() -> None:
    for seed in (0, 1):
        specs = domain_specs(seed, {f: 0.0 for f in GAP_FACTORS})
        assert specs["target"] == specs["source"]


@pytest.mark.parametrize("factor", GAP_FACTORS)
def test_each_factor_moves_only_its_own_parameters(factor: str) -> None:
    none = domain_specs(0, {f: 0.0 for f in GAP_FACTORS})["target"]
    one = domain_specs(0, {f: float(f == factor) for f in GAP_FACTORS})["target"]
    moved = {f"layout.{k}" for k, v in vars(one.layout).items() if v != getattr(none.layout, k)}
    moved |= {f"look.{k}" for k, v in vars(one.look).items() if v != getattr(none.look, k)}
    owners = {"tone": {"look.saturation", "look.haze"}, "texture": {"look.texture"},
              "illumination": {"look.sun", "look.overcast_sky"}, "sensor": {"look.jpeg_quality", "layout.ego_hood_prob"},
              "layout": {"layout.cam_height", "layout.persons"}}  # fmt: skip
    assert owners[factor] <= moved
    for other, fields in owners.items():
        if other != factor:
            assert not fields & moved, (factor, other)


def test_which_domain_has_the_sun_alternates_with_the_seed() -> None:
    even, odd = (domain_specs(s, {f: 1.0 for f in GAP_FACTORS}) for s in (0, 1))
    assert even["source"].look.sun > even["target"].look.sun and odd["source"].look.sun < odd["target"].look.sun


def test_v2_layouts_carry_depth_facing_and_sun_shadows() -> None:
    specs = domain_specs(0, {f: 1.0 for f in GAP_FACTORS})
    layout = sc.sample_layout(sc.sample_rng(0, "source", 0), specs["source"].layout, 64, 128)
    assert layout.depth.shape == layout.facing.shape == layout.shadow.shape == (64, 128) and layout.sun is not None
    road = layout.train_ids == 2 * 0  # road: depth grows towards the horizon
    rows = np.nonzero(road.any(axis=1))[0]
    near, far = layout.depth[rows[-1]][road[rows[-1]]].mean(), layout.depth[rows[0]][road[rows[0]]].mean()
    assert far > near > 0
    assert 0 <= layout.shadow.min() and layout.shadow.max() <= 1
    image = render_look(layout, np.random.default_rng(0), specs["target"].look)
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8


def test_deterministic_and_independent_of_workers(dataset: Path, tmp_path: Path) -> None:
    again = sc.generate_synthcity(tmp_path / "again", seed=3, size=SIZE, workers=2, progress=False, **COUNTS)
    assert _digest(again) == _digest(dataset)
    other = sc.generate_synthcity(tmp_path / "other", seed=4, size=SIZE, workers=1, progress=False, **COUNTS)
    assert _digest(other)["gta5/images/00001.png"] != _digest(dataset)["gta5/images/00001.png"]


def test_existing_dataset_is_reused_or_refused(dataset: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in dataset.rglob("*")}
    assert sc.generate_synthcity(dataset, seed=3, size=SIZE, workers=1, progress=False, **COUNTS) == dataset
    assert {p: p.stat().st_mtime_ns for p in dataset.rglob("*")} == before
    with pytest.raises(FileExistsError, match=str(dataset)):
        sc.generate_synthcity(dataset, seed=4, size=SIZE, workers=1, progress=False, **COUNTS)


def test_not_a_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    with pytest.raises(FileExistsError, match="busy"):
        sc.generate_synthcity(tmp_path / "busy", seed=0, size=SIZE, workers=1, progress=False, **COUNTS)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    from symda.data.synthcity import writing

    real = writing._write_task

    def failing(args: tuple) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk on fire")
        real(args)

    monkeypatch.setattr(writing, "_write_task", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sc.generate_synthcity(tmp_path / "out", seed=0, size=SIZE, workers=1, progress=False, **COUNTS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("domain", ["source", "target"])
def test_all_classes_appear(domain: str) -> None:
    seen: set[int] = set()
    for i in range(60):
        layout = sc.sample_layout(sc.sample_rng(0, domain, i), domain, 64, 128)
        seen |= set(np.unique(layout.train_ids).tolist())
    assert set(range(NUM_CLASSES)) <= seen, sorted(set(range(NUM_CLASSES)) - seen)


def test_label_ids_round_trip_to_train_ids() -> None:
    layout = sc.sample_layout(sc.sample_rng(0, "target", 1), "target", 32, 64)
    np.testing.assert_array_equal(label_ids_to_train_ids(layout.label_ids()), layout.train_ids)


def test_same_layout_in_both_styles() -> None:
    layout = sc.sample_layout(sc.sample_rng(0, "source", 0), "source", 32, 64)
    labels_before = layout.train_ids.copy()
    src = sc.render_appearance(layout, np.random.default_rng(1), sc.SOURCE_STYLE)
    tgt = sc.render_appearance(layout, np.random.default_rng(1), sc.TARGET_STYLE)
    assert src.shape == tgt.shape == (32, 64, 3) and src.dtype == tgt.dtype == np.uint8
    np.testing.assert_array_equal(layout.train_ids, labels_before)  # rendering never touches labels
    assert np.abs(src.astype(int) - tgt.astype(int)).mean() > 20  # a real appearance gap


def test_render_scene_shapes() -> None:
    image, train_ids = sc.render_scene(np.random.default_rng(0), "target", 32, 64)
    assert image.shape == (32, 64, 3) and image.dtype == np.uint8
    assert train_ids.shape == (32, 64) and train_ids.dtype == np.uint8
    assert set(np.unique(train_ids).tolist()) <= set(range(NUM_CLASSES)) | {255}


def test_sample_grid(dataset: Path, tmp_path: Path) -> None:
    out = sc.save_sample_grid(dataset, tmp_path / "grid.png", n=2)
    im = Image.open(out)
    assert im.mode == "RGB" and im.width >= 4 * SIZE[1] and im.height >= 2 * SIZE[0]
