import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from symda.config import PseudoConfig
from symda.data import cityscapes
from symda.data.dataset import SegmentationDataset
from symda.data.labels import NUM_CLASSES
from symda.pseudo import compute_thresholds, confidence_map, generate_pseudo_labels, select
from tests.conftest import write_cityscapes

SIZE = (8, 16)  # network input; images are 32x64, so probabilities are upsampled 4x


def target(root: Path, with_labels: bool = False) -> SegmentationDataset:
    samples = cityscapes.list_cityscapes(root, "train", with_labels=with_labels)
    decoder = cityscapes.decode_label if with_labels else None
    return SegmentationDataset(samples, decoder, SIZE, with_labels=with_labels, root=root)


def fixed_probs(index: int, path: int) -> torch.Tensor:
    """(C, 4, 8) probabilities fixed per (image, path), at a resolution unlike the input's."""
    g = torch.Generator().manual_seed(100 * index + path)
    return torch.softmax(3 * torch.randn(NUM_CLASSES, 4, 8, generator=g), dim=0)


def prob_fn_pair(images: torch.Tensor, indices: list[int]):
    return torch.stack([fixed_probs(i, 0) for i in indices]), torch.stack(
        [fixed_probs(i, 1) for i in indices]
    )


def prob_fn_single(images: torch.Tensor, indices: list[int]):
    return torch.stack([fixed_probs(i, 0) for i in indices]), None


def expected_labels(index: int, cfg: PseudoConfig, thresholds: torch.Tensor, symmetric: bool) -> np.ndarray:
    up = lambda p: F.interpolate(p[None], size=(32, 64), mode="bilinear", align_corners=False)  # noqa: E731
    p_s = up(fixed_probs(index, 1)) if symmetric else None
    pred, m_conf, _, _ = confidence_map(
        up(fixed_probs(index, 0)), p_s, cfg.fusion_weight, cfg.consistency, cfg.conf_weight
    )
    return select(pred, m_conf, thresholds)[0].numpy()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path / "cityscapes", n_train=5, n_val=0)


@pytest.mark.parametrize(
    ("symmetric", "cfg"),
    [
        (True, PseudoConfig()),
        (False, PseudoConfig()),
        (True, PseudoConfig(threshold="global", tau=0.6, consistency="hard")),
        (False, PseudoConfig(threshold="global", tau=0.3, consistency="none")),
    ],
)
def test_generate_writes_readable_pseudo_labels(
    root: Path, tmp_path: Path, symmetric: bool, cfg: PseudoConfig
):
    prob_fn = prob_fn_pair if symmetric else prob_fn_single
    out = tmp_path / "pseudo"
    ds = target(root)
    stats = generate_pseudo_labels(prob_fn, ds, cfg, out, root, "train", batch_size=2, figure_images=2)

    thresholds = torch.tensor([stats["thresholds"][n] for n in stats["thresholds"]], dtype=torch.float32)
    assert torch.equal(thresholds, compute_thresholds(prob_fn, ds, cfg, batch_size=3))
    samples = cityscapes.list_cityscapes(out, "train", with_labels=True)
    assert [s.name for s in samples] == [s.name for s in ds.samples]
    kept = total = 0
    for i, s in enumerate(samples):
        assert s.image.read_bytes() == ds.samples[i].image.read_bytes()
        got = cityscapes.decode_label(s.label)
        want = expected_labels(i, cfg, thresholds, symmetric)
        assert got.shape == (32, 64)
        assert np.array_equal(got, want)
        kept += int((want != 255).sum())
        total += want.size
        conf = out / "confidence" / "train" / s.name.replace("_leftImg8bit.png", "_conf.png")
        assert conf.is_file()
    assert 0 < kept < total  # the thresholds select something, and not everything
    assert stats["coverage"] == pytest.approx(kept / total)

    on_disk = json.loads((out / "pseudo_stats.json").read_text())
    for key in ("thresholds", "coverage", "coverage_per_class", "mean_conf", "mean_consis", "agreement"):
        assert key in stats and key in on_disk
    assert (out / "pseudo_labels.png").is_file()
    assert stats["symmetric"] is symmetric
    if symmetric and cfg.consistency != "none":
        assert 0 <= stats["mean_consis"] <= 1
    else:
        assert np.isnan(stats["mean_consis"])
    assert np.isnan(stats["agreement"]) != symmetric
    if cfg.threshold == "global":
        assert list(stats["thresholds"].values()) == pytest.approx([cfg.tau] * NUM_CLASSES)
    assert not any(k.startswith("diag_") for k in stats)
    # Nothing left half-written.
    assert not list(out.rglob("*.tmp"))


def counting(prob_fn):
    calls = []

    def fn(images, indices):
        calls.append(list(indices))
        return prob_fn(images, indices)

    return fn, calls


@pytest.mark.parametrize("keep_mb", [1.0, 1e-3])  # pass 1's maps fit / not even one image's does
def test_pass_2_reads_pass_1s_kept_maps_and_writes_the_same_files(root: Path, tmp_path: Path, keep_mb: float):
    cfg = PseudoConfig(threshold="class_quantile")
    streamed, calls_streamed = counting(prob_fn_pair)
    kept, calls_kept = counting(prob_fn_pair)
    a = generate_pseudo_labels(streamed, target(root, True), cfg, tmp_path / "a", root, batch_size=2, figure_images=0,
                               labelled_dataset=target(root, True))  # fmt: skip
    b = generate_pseudo_labels(kept, target(root, True), cfg, tmp_path / "b", root, batch_size=2, figure_images=0,
                               labelled_dataset=target(root, True), keep_mb=keep_mb)  # fmt: skip
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    assert len(calls_streamed) == 6  # 3 batches of 5 images, twice
    assert len(calls_kept) == (3 if keep_mb == 1.0 else 6)  # 5 images x 32 x 64 pixels x 5 bytes = 51 kB


def test_kept_maps_keep_nothing_once_an_image_differs_in_size_or_does_not_fit():
    from symda.pseudo.generate import KeptMaps, PixelMaps

    def maps(index: int, h: int, w: int) -> PixelMaps:
        z = torch.zeros(h, w)
        return PixelMaps(index, z.long(), z, z, None, None, z.long(), None)

    same = KeptMaps(1e6, 2)
    same.add(maps(0, 4, 8)), same.add(maps(1, 4, 8))
    assert same.complete and [m.index for m in same] == [0, 1] and next(iter(same)).pred.dtype == torch.int64
    other = KeptMaps(1e6, 2)
    other.add(maps(0, 4, 8)), other.add(maps(1, 4, 9))
    assert not other.complete and list(other) == []
    small = KeptMaps(2 * 4 * 8 * 5 - 1, 2)  # one byte short
    small.add(maps(0, 4, 8))
    assert not small.complete and small.pred is None


@pytest.mark.parametrize("symmetric", [True, False])
def test_a_maps_memo_labels_later_settings_exactly_without_running_the_networks(
    root: Path, tmp_path: Path, symmetric: bool
):
    """Trials that differ in threshold and conf_weight read the first one's full-size maps."""
    from symda.pseudo.generate import MapsMemo

    prob_fn = prob_fn_pair if symmetric else prob_fn_single
    settings = [PseudoConfig(threshold="class_quantile", conf_weight=0.3),
                PseudoConfig(threshold="global", tau=0.6, conf_weight=0.8),
                PseudoConfig(threshold="global", tau=0.6, consistency="hard")]  # fmt: skip
    memo = MapsMemo(1e6, 5)
    counted, calls = counting(prob_fn)
    for k, cfg in enumerate(settings):
        common = dict(labelled_dataset=target(root, True), batch_size=2, figure_images=0)
        a = generate_pseudo_labels(prob_fn, target(root), cfg, tmp_path / f"a{k}", root, **common)
        before = len(calls)
        b = generate_pseudo_labels(counted, target(root), cfg, tmp_path / f"b{k}", root, memo=memo, **common)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        files = sorted(
            p.relative_to(tmp_path / f"a{k}") for p in (tmp_path / f"a{k}").rglob("*") if p.is_file()
        )
        assert files and all(
            (tmp_path / f"a{k}" / f).read_bytes() == (tmp_path / f"b{k}" / f).read_bytes() for f in files
        )
        # The first setting fills the memo (3 batches); the second reads it; "hard" is a setting of its own.
        assert len(calls) - before == (0 if k == 1 else 3)
    assert memo.nbytes == 2 * 5 * 32 * 64 * (11 if symmetric else 6)
    tight = MapsMemo(5 * 32 * 64 * 11 - 1, 5)  # one byte short of a setting
    generate_pseudo_labels(
        prob_fn_pair, target(root), settings[1], tmp_path / "c", root, memo=tight, figure_images=0
    )
    assert tight.nbytes == 0 and tight.get(settings[1], 0) is None


def test_generate_diagnostics_with_labels(root: Path, tmp_path: Path):
    stats = generate_pseudo_labels(
        prob_fn_pair, target(root), PseudoConfig(), tmp_path / "p", root, labelled_dataset=target(root, True),
        figure_images=1,
    )  # fmt: skip
    for key in (
        "diag_pseudo_precision_per_class",
        "diag_pseudo_accuracy",
        "diag_pred_miou",
        "diag_pred_iou_per_class",
    ):
        assert key in stats
    assert 0 <= stats["diag_pseudo_accuracy"] <= 1
    assert len(stats["diag_pseudo_precision_per_class"]) == NUM_CLASSES


def test_generate_rejects_images_outside_target_root(root: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="not under"):
        generate_pseudo_labels(prob_fn_single, target(root), PseudoConfig(threshold="global"), tmp_path / "p",
                               tmp_path / "elsewhere", figure_images=0)  # fmt: skip


def test_the_headroom_diagnostic_writes_true_labels_at_the_kept_pixels_or_at_all(root: Path, tmp_path: Path):
    """pseudo.true_target_labels (reads the target labels): "kept" = the policy's pixels with their true
    labels (precision 1, the same coverage), "correct" = its right labels only, "all" = the true label at
    every pixel."""
    labelled = target(root, True)
    out = {}
    for kind in ("none", "kept", "correct", "all"):
        cfg = PseudoConfig(true_target_labels=kind)
        stats = generate_pseudo_labels(prob_fn_pair, target(root), cfg, tmp_path / kind, root,
                                       labelled_dataset=labelled, figure_images=0)  # fmt: skip
        written = target(tmp_path / kind, True)
        out[kind] = (stats, np.stack([written[i]["label"].numpy() for i in range(len(written))]))
    truth = np.stack([labelled[i]["label"].numpy() for i in range(len(labelled))])
    (_, none), (kept_stats, kept), (_, every) = out["none"], out["kept"], out["all"]
    right = out["correct"][1]
    assert (
        np.array_equal(right, np.where(none == truth, none, 255))
        and (right != 255).sum() < (kept != 255).sum()
    )
    assert np.array_equal(kept != 255, (none != 255) & (truth != 255))  # the policy's pixels
    assert np.array_equal(kept[kept != 255], truth[kept != 255]) and kept_stats["diag_pseudo_accuracy"] == 1.0
    assert np.array_equal(every, truth)
    with pytest.raises(ValueError, match="reads the target train labels"):
        generate_pseudo_labels(prob_fn_pair, target(root), PseudoConfig(true_target_labels="all"),
                               tmp_path / "x", root)  # fmt: skip
