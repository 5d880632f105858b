"""Datasets: real layouts (GTA5, Cityscapes, SYNTHIA), the SynthCity benchmark, transforms, checks.

`build_dataset(cfg.data, cfg.synth, role)` is the one entry point the stages use; `role` says which
split and whether labels may be read:
- "source": labelled source, training view (random crop/flip), without the data.source_holdout images;
- "source_holdout": those held-out source images with labels, evaluation view (source_miou);
- "target": target train split, images only (what adaptation may see);
- "target_labelled": target train split with labels (the oracle; diagnostics);
- "val": target val split with labels, evaluation view.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

from symda.config import DataConfig, SynthCityConfig
from symda.data import cityscapes, gta5, synthia
from symda.data.check import DataReport, Problem, check_samples
from symda.data.dataset import DatasetError, Sample, SegmentationDataset
from symda.data.labels import KNOWN_LABEL_IDS

log = logging.getLogger(__name__)

ROLES = ("source", "source_holdout", "target", "target_labelled", "val")


def split_holdout(samples: list[Sample], count: int) -> tuple[list[Sample], list[Sample]]:
    """(training samples, held-out samples): the `count` samples whose names hash lowest are held out.

    Chosen by name, not position or seed: S and its translation S' hold out the same images, every
    seed the same, and a real dataset's consecutive (similar) frames are not held out together.
    """
    if count <= 0:
        return samples, []
    if count >= len(samples):
        raise DatasetError(
            f"data.source_holdout: {count} images held out of a source split of {len(samples)} leaves none to train on"
        )
    import hashlib

    order = sorted(samples, key=lambda s: hashlib.sha1(s.name.encode()).hexdigest())
    held = {s.name for s in order[:count]}
    return [s for s in samples if s.name not in held], [s for s in samples if s.name in held]


def dataset_root(value: str, key: str) -> Path:
    """A configured root with ~ and environment variables expanded ($CITYSCAPES_DATASET, as
    cityscapesscripts reads it); an unset variable is an error naming it and the key."""
    expanded = os.path.expandvars(os.path.expanduser(value))
    unset = re.findall(r"\$\{?(\w+)", expanded)
    if unset:
        raise DatasetError(f"{key}: {value!r} names the environment variable {unset[0]}, which is not set")
    return Path(expanded)


def resolve_roots(data: DataConfig, synth: SynthCityConfig) -> tuple[Path, Path]:
    """(source_root, target_root); an empty root means the SynthCity domain under synth.root."""
    source = dataset_root(data.source_root, "data.source_root") if data.source_root else Path(synth.root) / "gta5"
    target = dataset_root(data.target_root, "data.target_root") if data.target_root else Path(synth.root) / "cityscapes"
    return source, target


def ensure_synthcity(data: DataConfig, synth: SynthCityConfig, progress: bool = True) -> None:
    """Generate SynthCity when a dataset root that points at it is missing (and synth.auto_generate),
    and check that one already there is the dataset the config describes (preset, gap, seed, size,
    counts): one generated with other settings is refused (FileExistsError naming what differs),
    never silently used.

    A missing root that is not SynthCity's is an error naming the root and the config key.
    """
    source, target = resolve_roots(data, synth)
    uses_synth = False
    for key, root in (("data.source_root", source), ("data.target_root", target)):
        if Path(synth.root).resolve() not in root.resolve().parents:
            if not root.exists():
                raise DatasetError(f"{root}: dataset root not found (set {key} to the dataset's folder)")
            continue
        uses_synth = True
        if not root.exists() and not synth.auto_generate:
            raise DatasetError(
                f"{root}: SynthCity not generated; run `symda synth --out {synth.root}` or set synth.auto_generate=true"
            )
    if not uses_synth:
        return
    from symda.data.synthcity import generate_synthcity

    if not Path(synth.root).exists():
        log.warning("%s is missing: generating SynthCity %s (seed %d)", synth.root, synth.preset, synth.seed)
    out = generate_synthcity(  # reuses the dataset there when its manifest matches, refuses any other
        Path(synth.root),
        seed=synth.seed,
        size=(synth.height, synth.width),
        n_source=synth.n_source,
        n_target=synth.n_target,
        n_val=synth.n_val,
        progress=progress,
        preset=synth.preset,
        gap=dataclasses.asdict(synth.gap),
        source_size=synthcity_source_size(synth),
    )
    if not (out / "samples.png").is_file():  # what a newcomer looks at first (`symda synth` writes it too)
        from symda.data.synthcity import save_sample_grid

        save_sample_grid(out, out / "samples.png")


def synthcity_source_size(synth: SynthCityConfig, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(H, W) of SynthCity's source images: synth.source_height x source_width, 0 = the target's
    (`size`, default synth.height x width)."""
    h, w = size or (synth.height, synth.width)
    return (synth.source_height or h, synth.source_width or w)


def _layout(kind: str):
    return {"gta5": gta5, "cityscapes": cityscapes, "synthia": synthia}[kind]


def list_samples(data: DataConfig, synth: SynthCityConfig, role: str) -> tuple[str, Path, list[Sample]]:
    """(dataset kind, root, samples) of a role; see the module docstring for the roles."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    source_root, target_root = resolve_roots(data, synth)
    if role in ("source", "source_holdout"):
        kind, list_file = data.source, data.source_list or None
        root = source_root
        if kind == "gta5":
            samples = gta5.list_gta5(source_root, list_file)
        elif kind == "synthia":
            samples = synthia.list_synthia(source_root, list_file)
        else:
            # The oracle: Cityscapes train with labels as the source (SynthCity's target when no root is set).
            root = source_root if data.source_root else target_root
            samples = cityscapes.list_cityscapes(root, "train", list_file)
        train, held = split_holdout(samples, data.source_holdout)
        return kind, root, train if role == "source" else held
    split = data.val_split if role == "val" else "train"
    if role == "val" and split in cityscapes.UNLABELLED_SPLITS:
        raise DatasetError(
            f"data.val_split: {split}: Cityscapes' {split} labels are not public (its gtFine files are "
            "placeholders), so nothing can be scored on it; evaluate on val"
        )
    list_file = data.target_list if role != "val" else ""
    with_labels = role != "target"
    return "cityscapes", target_root, cityscapes.list_cityscapes(target_root, split, list_file or None, with_labels)


def check_role(data: DataConfig, synth: SynthCityConfig, role: str, progress: bool = False) -> DataReport:
    """Run the dataset check on the samples of one role."""
    kind, root, samples = list_samples(data, synth, role)
    layout = _layout(kind)
    known = synthia.KNOWN_SYNTHIA_IDS if kind == "synthia" else KNOWN_LABEL_IDS
    with_labels = any(s.label is not None for s in samples)
    label_files = None
    if with_labels:
        if kind == "gta5":
            label_files = sorted((root / "labels").glob("*.png"))
        elif kind == "synthia":
            label_files = sorted((root / "GT" / "LABELS").glob("*.png"))
        else:
            split = "train" if role in ("source", "target_labelled") else data.val_split
            label_files = sorted((cityscapes.label_dir(root) / split).glob(f"*/*{cityscapes.LABEL_SUFFIX}"))
        if (
            ((data.source_list or data.source_holdout) and role in ("source", "source_holdout"))
            or (data.target_list and role == "target_labelled")
        ):
            label_files = None  # a split list or a holdout uses a subset on purpose: other labels are not 'extra'
    report = check_samples(
        samples, layout.read_label_ids if with_labels else None, known, f"{root} [{role}]", label_files, progress
    )
    if kind == "gta5":
        why = (f"frames missing from the published GTA5 download ({gta5.PUBLISHED_FRAMES} frames, "
               f"{gta5.PUBLISHED_FRAMES - len(gta5.KNOWN_MISSING_IDS)} pairs)")  # fmt: skip
        skipped = gta5.skipped_known_frames(root, data.source_list or None, with_labels)
        report.known = [Problem("known_missing", str(root / "images" / n), why) for n in skipped]
        # A known-missing frame's label without its image is the same quirk, not an extra label.
        known_extra = [p for p in report.problems
                       if p.kind == "extra_label" and gta5.frame_id(Path(p.path).name) in gta5.KNOWN_MISSING_IDS]  # fmt: skip
        report.problems = [p for p in report.problems if p not in known_extra]
        report.known += [Problem("known_missing", p.path, why) for p in known_extra if Path(p.path).name not in skipped]
    return report


def build_dataset(
    data: DataConfig,
    synth: SynthCityConfig,
    role: str,
    skip: set[int] | None = None,
    with_labels: bool | None = None,
) -> SegmentationDataset:
    """The dataset of one role, transformed as configured; `skip` drops samples a check found bad.

    with_labels=False reads images only (e.g. the translator's view of the source); None = the role's
    default (labels for every role but "target", whose labels nothing may read).
    """
    kind, root, samples = list_samples(data, synth, role)
    if skip:
        samples = [s for i, s in enumerate(samples) if i not in skip]
    train_view = role in ("source", "target", "target_labelled")
    size = data.source_size if role in ("source", "source_holdout") else data.target_size
    return SegmentationDataset(
        samples,
        decode_label=_layout(kind).decode_label,
        size=size,
        crop_size=data.crop_size if train_view else None,
        flip=data.flip and train_view,
        normalize=data.normalize,
        with_labels=(role != "target") if with_labels is None else (with_labels and role != "target"),
        root=root,
        cache_mb=data.cache_mb,
    )
