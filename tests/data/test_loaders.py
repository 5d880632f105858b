import dataclasses
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

from symda.config import DataConfig, SynthCityConfig
from symda.data import build_dataset, check_role, cityscapes, ensure_synthcity, gta5, synthia
from symda.data.dataset import DatasetError, ResumableBatchSampler
from symda.data.labels import LABEL_ID_TO_TRAIN_ID
from tests.conftest import SHARED

SAMPLE = SHARED / "reference" / "cityscapes_sample"


def data_cfg(tiny_data, **kw) -> DataConfig:
    return DataConfig(source_root=str(tiny_data["source"]), target_root=str(tiny_data["target"]),
                      source_size=(16, 32), target_size=(16, 32), **kw)  # fmt: skip


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/reference/cityscapes_sample is absent")
def test_real_cityscapes_frame_loads_with_official_train_ids():
    samples = cityscapes.list_cityscapes(SAMPLE, "val")
    assert [s.name for s in samples] == ["frankfurt/frankfurt_000000_000294_leftImg8bit.png"]
    ours = cityscapes.decode_label(samples[0].label)
    official = np.asarray(Image.open(str(samples[0].label).replace("labelIds", "labelTrainIds")))
    assert ours.shape == official.shape == (128, 256)
    # The sample's two label files were downscaled separately, so 77 of 32,768 pixels on class
    # boundaries disagree. Everywhere else ours must equal the official conversion, and every
    # disagreeing pixel must take a value that the official file has in its 3x3 neighbourhood.
    differ = np.argwhere(ours != official)
    assert len(differ) / ours.size < 0.005
    padded = np.pad(official, 1, mode="edge")
    for r, c in differ:
        assert ours[r, c] in padded[r : r + 3, c : c + 3]
    ids = cityscapes.read_label_ids(samples[0].label)
    for label_id in np.unique(ids):  # on non-boundary pixels the id -> trainId mapping is the official one
        values, counts = np.unique(official[ids == label_id], return_counts=True)
        assert values[counts.argmax()] == LABEL_ID_TO_TRAIN_ID[label_id]


def test_gta5_palettised_labels_read_as_ids(tiny_data):
    samples = gta5.list_gta5(tiny_data["source"])
    assert len(samples) == 12
    lab = Image.open(samples[0].label)
    assert lab.mode == "P"
    ids = gta5.read_label_ids(samples[0].label)
    assert np.array_equal(gta5.decode_label(samples[0].label), LABEL_ID_TO_TRAIN_ID[ids])
    assert set(np.unique(ids)) <= set(range(34))


def test_gta5_rgb_label_is_refused(tmp_path):
    p = tmp_path / "00001.png"
    Image.new("RGB", (8, 4)).save(p)
    with pytest.raises(DatasetError, match="00001.png.*mode RGB"):
        gta5.read_label_ids(p)


def test_synthia_16bit_first_channel(tmp_path):
    (tmp_path / "RGB").mkdir()
    (tmp_path / "GT" / "LABELS").mkdir(parents=True)
    Image.new("RGB", (4, 2)).save(tmp_path / "RGB" / "0000000.png")
    ids = np.array([[3, 4, 2, 21], [10, 0, 22, 8]], dtype=np.uint16)
    planes = np.stack([ids, np.full_like(ids, 999), np.full_like(ids, 7)], axis=-1)  # instance ids elsewhere
    png.Writer(4, 2, greyscale=False, bitdepth=16).write(
        (tmp_path / "GT" / "LABELS" / "0000000.png").open("wb"), planes.reshape(2, -1).tolist()
    )
    samples = synthia.list_synthia(tmp_path)
    assert synthia.decode_label(samples[0].label).tolist() == [[0, 1, 2, 3], [11, 255, 255, 13]]


def test_split_list_selects_images(tiny_data, tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("# two images\n00002.png\n00005.png\n\n")
    assert [s.name for s in gta5.list_gta5(tiny_data["source"], lst)] == ["00002.png", "00005.png"]


def test_target_train_split_has_no_labels(tiny_data):
    cfg = data_cfg(tiny_data)
    ds = build_dataset(cfg, SynthCityConfig(), "target")
    item = ds[(0, 123)]
    assert "label" not in item and item["image"].shape == (3, 16, 32)
    val = build_dataset(cfg, SynthCityConfig(), "val")
    item = val[0]
    assert item["label"].shape == (16, 32) and item["full_label"].shape == (32, 64)


def test_augmentation_is_a_function_of_the_seed(tiny_data):
    ds = build_dataset(data_cfg(tiny_data, crop_size=(8, 16)), SynthCityConfig(), "source")
    a, b = ds[(3, 7)], ds[(3, 7)]
    assert a["image"].shape == (3, 8, 16)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["label"], b["label"])


@pytest.mark.parametrize("role", ["source", "val"])
def test_memory_cache_gives_the_same_items_and_reads_each_file_once(tiny_data, role, monkeypatch):
    cfg = data_cfg(tiny_data, crop_size=(8, 16))
    plain = build_dataset(dataclasses.replace(cfg, cache_mb=0), SynthCityConfig(), role)
    cached = build_dataset(cfg, SynthCityConfig(), role)
    reads = []
    read = type(cached).read
    monkeypatch.setattr(type(cached), "read", lambda self, i: reads.append((id(self), i)) or read(self, i))
    keys = [(i, 11 * i + r) for r in range(3) for i in range(len(plain))] if role == "source" else list(range(len(plain))) * 3
    for key in keys:
        a, b = plain[key], cached[key]
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (key, k)
    assert sum(1 for owner, _ in reads if owner == id(cached)) == len(cached)  # every file decoded once
    assert sum(1 for owner, _ in reads if owner == id(plain)) == len(keys)
    # A split larger than the budget is not cached at all (no partial cache), and still correct.
    small = build_dataset(dataclasses.replace(cfg, cache_mb=1e-6), SynthCityConfig(), role)
    assert np.array_equal(small[keys[0]]["image"], plain[keys[0]]["image"]) and small._cache is None


def test_resumed_sampler_yields_the_same_batches():
    full = list(ResumableBatchSampler(10, 4, seed=3, steps=7))
    resumed = list(ResumableBatchSampler(10, 4, seed=3, steps=7, start_step=4))
    assert resumed == full[4:]
    # every epoch visits every image once
    flat = [i for batch in full for i, _ in batch][:20]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))


def test_check_finds_each_kind_of_damage(tiny_data):
    src = tiny_data["source"]
    (src / "labels" / "00002.png").unlink()  # missing label
    Image.new("L", (10, 10)).save(src / "labels" / "00003.png")  # wrong size
    (src / "images" / "00004.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")  # corrupt PNG
    bad = np.full((32, 64), 200, dtype=np.uint8)
    Image.fromarray(bad).save(src / "labels" / "00005.png")  # unknown ids
    Image.new("L", (64, 32)).save(src / "labels" / "99999.png")  # label without image
    report = check_role(data_cfg(tiny_data), SynthCityConfig(), "source")
    assert report.counts() == {"missing_label": 1, "size_mismatch": 1, "unreadable_image": 1,
                               "unknown_label_values": 1, "extra_label": 1}  # fmt: skip
    assert len(report.bad) == 4
    text = report.summary()
    for name in ("00002.png", "00003.png", "00004.png", "00005.png", "99999.png"):
        assert name in text


def test_missing_root_is_named(tmp_path):
    cfg = DataConfig(source_root=str(tmp_path / "nowhere"), target_root=str(tmp_path / "nowhere2"))
    with pytest.raises(DatasetError, match="nowhere: dataset root not found.*data.source_root"):
        ensure_synthcity(cfg, SynthCityConfig(root=str(tmp_path / "synth")))


def test_label_of_wrong_size_is_an_error_when_read(tiny_data):
    Image.new("L", (10, 10)).save(tiny_data["target"] / "gtFine" / "val" / "town0" / "town0_000000_000019_gtFine_labelIds.png")
    ds = build_dataset(data_cfg(tiny_data), SynthCityConfig(), "val")
    with pytest.raises(DatasetError, match="town0_000000_000019_gtFine_labelIds.png: label is 10x10"):
        ds[0]


def test_not_a_dataset_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match="not a GTA5 root"):
        gta5.list_gta5(tmp_path)
    with pytest.raises(DatasetError, match="not a Cityscapes root"):
        cityscapes.list_cityscapes(Path(tmp_path), "val")


def test_a_synthcity_made_with_other_settings_is_refused_not_used(tmp_path):
    from symda.data.synthcity import generate_synthcity

    small = {"n_source": 2, "n_target": 2, "n_val": 1, "height": 32, "width": 64}
    root = tmp_path / "synth"
    generate_synthcity(root, size=(32, 64), n_source=2, n_target=2, n_val=1, workers=1, progress=False, preset="v1")
    ensure_synthcity(DataConfig(), SynthCityConfig(root=str(root), preset="v1", **small))  # the same: reused
    assert (root / "samples.png").is_file()  # generated on first use or not, a run's first picture is there
    with pytest.raises(FileExistsError, match="synth.preset"):
        ensure_synthcity(DataConfig(), SynthCityConfig(root=str(root), **small))  # v2 settings, v1 data


# ------------------------------------------------------------------------ the real datasets' quirks


def gta5_frames(root: Path, ids: range) -> Path:
    """A GTA5-layout root holding frames `ids` (named as GTA5 names them: 02154.png)."""
    from tests.conftest import write_gta5

    write_gta5(root, len(ids), h=8, w=16)
    for k, i in reversed(list(enumerate(ids, start=1))):  # rename 00001.png... to the wanted ids
        for folder in ("images", "labels"):
            (root / folder / f"{k:05d}.png").rename(root / folder / f"{i:05d}.png")
    return root


@pytest.mark.parametrize("with_list", [False, True])
def test_gta5s_known_missing_frames_are_skipped_and_named_as_known(tmp_path, with_list):
    root = gta5_frames(tmp_path / "GTA5", range(2150, 2161))  # 2154-2158 are known to be missing
    for i in (2154, 2155, 2156, 2157):
        (root / "images" / f"{i:05d}.png").unlink()
        (root / "labels" / f"{i:05d}.png").unlink()
    (root / "images" / "02158.png").unlink()  # its label left behind: the same quirk, not an extra label
    listed = tmp_path / "train.txt"
    listed.write_text("".join(f"{i:05d}.png\n" for i in range(2150, 2161)))  # the published names, all of them
    cfg = DataConfig(source_root=str(root), source_list=str(listed) if with_list else "", target_root=str(tmp_path))
    assert [s.name for s in gta5.list_gta5(root, cfg.source_list or None)] == [
        f"{i:05d}.png" for i in (2150, 2151, 2152, 2153, 2159, 2160)
    ]
    report = check_role(cfg, SynthCityConfig(), "source")
    assert report.ok and report.n_samples == 6
    assert sorted(Path(p.path).name for p in report.known) == [f"{i:05d}.png" for i in range(2154, 2159)]
    assert "known, skipped: 5" in report.summary() and "published GTA5 download" in report.summary()
    # Any other missing frame is still a problem that stops training.
    (root / "labels" / "02151.png").unlink()
    report = check_role(cfg, SynthCityConfig(), "source")
    assert report.counts() == {"missing_label": 1} and not report.ok


def test_a_synthcity_in_gta5s_layout_expects_no_known_missing_frame(tiny_data):
    cfg = data_cfg(tiny_data)
    assert check_role(cfg, SynthCityConfig(), "source").known == []


def test_cityscapes_as_downloaded_and_through_cityscapes_dataset(tmp_path, monkeypatch):
    from tests.conftest import write_cityscapes

    flat = write_cityscapes(tmp_path / "flat", n_train=1, n_val=2)
    root = tmp_path / "cityscapes"  # each official zip unpacked into its own folder
    (root / "leftImg8bit_trainvaltest").mkdir(parents=True)
    (root / "gtFine_trainvaltest").mkdir()
    (flat / "leftImg8bit").rename(root / "leftImg8bit_trainvaltest" / "leftImg8bit")
    (flat / "gtFine").rename(root / "gtFine_trainvaltest" / "gtFine")
    samples = cityscapes.list_cityscapes(root, "val")
    assert len(samples) == 2 and all(s.label.is_file() and "gtFine_trainvaltest" in str(s.label) for s in samples)
    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    cfg = DataConfig(source="cityscapes", source_root="$CITYSCAPES_DATASET", target_root="${CITYSCAPES_DATASET}",
                     target_size=(8, 16))  # fmt: skip
    assert check_role(cfg, SynthCityConfig(), "val").ok
    assert build_dataset(cfg, SynthCityConfig(), "val")[0]["label"].shape == (8, 16)
    monkeypatch.delenv("CITYSCAPES_DATASET")
    with pytest.raises(DatasetError, match="data.source_root.*CITYSCAPES_DATASET.*not set"):
        build_dataset(cfg, SynthCityConfig(), "val")


def test_cityscapes_test_split_is_read_without_labels_and_never_scored(tmp_path):
    from tests.conftest import write_cityscapes

    root = write_cityscapes(tmp_path / "cs", n_train=1, n_val=1)
    (root / "leftImg8bit" / "val").rename(root / "leftImg8bit" / "test")
    (root / "gtFine" / "val").rename(root / "gtFine" / "test")  # placeholders, as the download ships them
    assert all(s.label is None for s in cityscapes.list_cityscapes(root, "test"))
    cfg = DataConfig(target_root=str(root), source_root=str(root), val_split="test")
    with pytest.raises(DatasetError, match="data.val_split: test.*not public.*evaluate on val"):
        build_dataset(cfg, SynthCityConfig(), "val")


def write_synthia(root: Path, ids: np.ndarray) -> Path:
    """A SYNTHIA-RAND-CITYSCAPES root of one frame: RGB/0000000.png and its 16-bit 3-channel label
    (class ids in the first channel, instance ids in the second, as the download ships them)."""
    (root / "RGB").mkdir(parents=True)
    (root / "GT" / "LABELS").mkdir(parents=True)
    h, w = ids.shape
    Image.new("RGB", (w, h)).save(root / "RGB" / "0000000.png")
    planes = np.stack([ids, np.arange(ids.size, dtype=np.uint16).reshape(ids.shape) + 1000, np.zeros_like(ids)], -1)
    with (root / "GT" / "LABELS" / "0000000.png").open("wb") as f:
        png.Writer(w, h, greyscale=False, bitdepth=16).write(f, planes.reshape(h, -1).tolist())
    return root


def test_a_generated_synthia_sample_checks_decodes_and_scores_on_16_and_13_classes(tmp_path):
    from symda.data.labels import SYNTHIA_ID_TO_TRAIN_ID
    from symda.evaluate import PROTOCOL_CLASSES, confusion_matrix, scores_from_confusion

    ids = np.tile(np.arange(23, dtype=np.uint16), (2, 1))  # every SYNTHIA id in each row, void (0) included
    root = write_synthia(tmp_path / "SYNTHIA", ids)
    cfg = DataConfig(source="synthia", source_root=str(root), target_root=str(tmp_path), source_size=(2, 23))
    assert check_role(cfg, SynthCityConfig(), "source").ok
    train_ids = synthia.decode_label(synthia.list_synthia(root)[0].label)
    expected = [SYNTHIA_ID_TO_TRAIN_ID.get(int(i), 255) for i in ids[0]]
    assert train_ids[0].tolist() == expected and sorted(set(expected) - {255}) == list(range(19))
    # A prediction right on everything but one class of each protocol scores exactly (k - 1) / k.
    pred = train_ids.copy()
    pred[train_ids == 13] = 0  # car predicted as road: in all three protocols
    conf = confusion_matrix(pred, train_ids)
    for protocol in (16, 13):
        scores = scores_from_confusion(conf, protocol)
        k = len(PROTOCOL_CLASSES[protocol])
        assert len(scores.per_class) == k and scores.per_class["car"] == 0.0
        # road: 2 right of 4 predicted (car's 2 pixels added): IoU 50; the rest 100
        assert scores.miou == pytest.approx((100 * (k - 2) + 50) / k)
    # An id outside SYNTHIA's 0..22 is a named problem.
    write_synthia(tmp_path / "bad", np.full((2, 3), 40, dtype=np.uint16))
    bad = DataConfig(source="synthia", source_root=str(tmp_path / "bad"), target_root=str(tmp_path))
    assert check_role(bad, SynthCityConfig(), "source").counts() == {"unknown_label_values": 1}


def test_synthcity_writes_the_source_at_its_own_size(tmp_path):
    from symda.data.synthcity import generate_synthcity, read_manifest, save_sample_grid

    kw = dict(size=(32, 64), n_source=2, n_target=1, n_val=2, workers=1, progress=False)
    out = generate_synthcity(tmp_path / "two", source_size=(40, 72), **kw)
    assert Image.open(out / "gta5" / "images" / "00001.png").size == (72, 40)
    assert Image.open(out / "gta5" / "labels" / "00001.png").size == (72, 40)
    assert Image.open(next((out / "cityscapes" / "leftImg8bit" / "val").glob("*/*.png"))).size == (64, 32)
    assert read_manifest(out)["source_size"] == [40, 72]
    assert Image.open(save_sample_grid(out, out / "samples.png")).height == 14 + 2 * 32 + 4
    # One size for both: the manifest of datasets written before the option.
    same = generate_synthcity(tmp_path / "one", source_size=(32, 64), **kw)
    assert "source_size" not in read_manifest(same)
