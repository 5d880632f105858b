"""Translate a whole dataset with a trained generator, into the same on-disk layout it came from.

Each image is translated at its full original resolution and written to `out_root / <its path relative
to the dataset root>`, so the existing loaders read the result:
- GTA5 root -> S': `images/` translated, `labels/` hard-linked (or copied) unchanged;
- Cityscapes train -> T': `leftImg8bit/train/{city}/...`, no labels (target labels reach nothing here);
- Cityscapes val -> V': `leftImg8bit/val/...` plus `gtFine/val/...labelIds` (for diagnostics).

The output is built in a hidden sibling folder (`.{name}.partial-{hash}`) and renamed into place only
when complete, so a half-translated dataset never sits at out_root; an interrupted run picks up the
partial folder where it stopped (each image is written atomically). `out_root/translation.json` names
the translator (sha256 of its checkpoint) and the direction: an existing out_root from the same
checkpoint is reused, one from another checkpoint is an error (two translators' outputs never mix).
It also records how much the translation changed the images (`mean_change`, grey levels over
CHANGE_IMAGES of them): below IDENTITY_CHANGE the translator learned the identity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from symda.config import TranslateConfig
from symda.data import cityscapes, gta5, synthia
from symda.data.dataset import DatasetError, Sample
from symda.io import atomic_write_bytes, link_or_copy, png_bytes, write_json
from symda.models.stargan import Generator
from symda.translate.train import tanh_to_uint8, uint8_to_tanh

log = logging.getLogger(__name__)

MARKER = "translation.json"
KINDS = ("gta5", "cityscapes", "synthia")
CHANGE_IMAGES = 32  # images a translation's change is measured on, spread over the dataset
# Grey levels (0-255): a translation that changes its images less than this on average did nothing. A
# StarGAN translator can settle on the identity (its reconstruction loss is then zero and a weak
# domain-classification term does not push it away, or a strong reconstruction term holds it there);
# a working one changes them by several levels.
IDENTITY_CHANGE = 0.5


class TranslationExistsError(FileExistsError):
    """out_root holds a translation by another checkpoint (or of other images); the message names both."""


def checkpoint_digest(path: Path) -> str:
    """First 16 hex digits of a sha256 over the generator's tensors (names, dtypes, shapes, values):
    the translator's identity. Not over the file's bytes: torch.save writes a per-process
    serialization id and record layout, so the same weights saved by a resumed run differ in bytes."""
    from symda.checkpoints import read_checkpoint

    state = read_checkpoint(path, "translator checkpoint", required=("G",))["G"]
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """First 16 hex digits of the sha256 of the file's bytes: the translator's identity before
    checkpoint_digest, so that translation.json files written then still match their checkpoint."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_generator(
    checkpoint: Path, cfg: TranslateConfig | None = None, device: str | torch.device = "cpu"
) -> Generator:
    """The generator of a translator.pt, in eval mode; `cfg` None = the config stored in the checkpoint."""
    from symda.checkpoints import CheckpointError, read_checkpoint

    state = read_checkpoint(checkpoint, "translator checkpoint", required=("G", "config"))
    if cfg is None:
        cfg = TranslateConfig(
            **{k: v for k, v in state["config"].items() if k in TranslateConfig.__dataclass_fields__}
        )
    G = Generator(cfg.g_conv_dim, cfg.g_repeat_num, num_domains=2, residual=cfg.residual)
    try:
        G.load_state_dict(state["G"])
    except RuntimeError as err:
        stored = state["config"]
        raise CheckpointError(
            f"{checkpoint}: generator does not match translate.g_conv_dim={cfg.g_conv_dim}, "
            f"translate.g_repeat_num={cfg.g_repeat_num}, translate.residual={cfg.residual} (the file was written "
            f"with g_conv_dim={stored.get('g_conv_dim')}, g_repeat_num={stored.get('g_repeat_num')}, "
            f"residual={stored.get('residual', False)}; {str(err).splitlines()[0]})"
        ) from None
    return G.to(device).eval()


def _write_png(path: Path, array: np.ndarray) -> None:
    """One translated image; compress_level 1 is several times faster, and the file is read back soon."""
    atomic_write_bytes(path, png_bytes(array, compress_level=1))


def translate_dataset(
    generator: torch.nn.Module,
    samples: list[Sample],
    to_domain: int,
    out_root: Path,
    layout_fn: Callable[[Sample], Path],
    batch_size: int = 8,
    progress: bool = False,
    skip_existing: bool = True,
) -> Path:
    """Write G(image, to_domain) of every sample to out_root / layout_fn(sample), at its original size.

    Images are read as uint8 RGB and mapped to [-1, 1] directly (no dataset normalisation round trip);
    they are batched by identical size, so mixed sizes cost no padding. `skip_existing` resumes a run
    that stopped half-way (files are written atomically, so an existing file is a whole one).
    """
    out_root = Path(out_root)
    device = next(generator.parameters()).device
    todo = [s for s in samples if not (skip_existing and (out_root / layout_fn(s)).is_file())]
    by_size: dict[tuple[int, int], list[Sample]] = defaultdict(list)
    for s in todo:
        try:
            with Image.open(s.image) as im:
                by_size[im.size].append(s)
        except (OSError, SyntaxError) as err:
            raise DatasetError(f"{s.image}: unreadable image ({err})") from err
    bar = tqdm(
        total=len(todo), desc=f"translate -> {out_root.name}", disable=not progress, dynamic_ncols=True
    )
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        for group in by_size.values():
            for i in range(0, len(group), batch_size):
                batch = group[i : i + batch_size]
                arrays = np.stack([np.asarray(Image.open(s.image).convert("RGB")) for s in batch])
                x = uint8_to_tanh(arrays).to(device)
                c = torch.full((len(batch),), to_domain, dtype=torch.long, device=device)
                for s, out in zip(batch, tanh_to_uint8(generator(x, c)), strict=True):
                    _write_png(out_root / layout_fn(s), out)
                bar.update(len(batch))
    generator.train(was_training)
    bar.close()
    return out_root


def mean_change(originals: list[Path], translations: list[Path]) -> float:
    """Mean |translation - original| over every pixel and channel of the pairs, in grey levels (0-255):
    about 0 for a translator that learned the identity. NaN for no pairs."""
    total, count = 0.0, 0
    for original, translation in zip(originals, translations, strict=True):
        with Image.open(original) as a, Image.open(translation) as b:
            x, y = (np.asarray(im.convert("RGB"), dtype=np.int16) for im in (a, b))
        if x.shape != y.shape:
            raise DatasetError(f"{translation}: {y.shape} pixels, but its original {original} has {x.shape}")
        total += float(np.abs(y - x).sum())
        count += x.size
    return total / count if count else math.nan


def dataset_change(samples: list[Sample], root: Path, translated_root: Path) -> tuple[float, int]:
    """(`mean_change` in grey levels, images measured) over CHANGE_IMAGES of `samples` spread over the
    list, each against its translation at the same path under translated_root. Raises DatasetError
    naming a translation that is missing."""
    measured = samples[:: max(1, len(samples) // CHANGE_IMAGES)][:CHANGE_IMAGES]
    translations = [Path(translated_root) / s.image.relative_to(root) for s in measured]
    for path in translations:
        if not path.is_file():
            raise DatasetError(f"{path}: no translation of {root}'s image there (is it the translated root?)")
    return mean_change([s.image for s in measured], translations), len(measured)


def translation_change(out_root: Path) -> float | None:
    """The mean change (`mean_change`) a finished translation recorded in its MARKER; None when it has
    none (written before symda measured it)."""
    marker = Path(out_root) / MARKER
    return json.loads(marker.read_text()).get("mean_change") if marker.is_file() else None


def list_root(kind: str, root: Path, split: str | None, list_file: str | None = None) -> list[Sample]:
    """Samples of a dataset root with the project's own listers (labels included where the split has them).

    The Cityscapes train split is listed without labels: target training labels are never copied.
    """
    if kind == "gta5":
        return gta5.list_gta5(root, list_file)
    if kind == "synthia":
        return synthia.list_synthia(root, list_file)
    if kind == "cityscapes":
        if not split:
            raise ValueError("translate_root: kind 'cityscapes' needs a split (train | val | test)")
        return cityscapes.list_cityscapes(root, split, list_file, with_labels=split not in ("train", "test"))
    raise ValueError(f"translate_root: kind {kind!r} is not one of {KINDS}")


def translate_root(
    checkpoint: Path,
    kind: str,
    root: Path,
    split: str | None,
    to_domain: int,
    out_root: Path,
    cfg: TranslateConfig | None = None,
    list_file: str | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = False,
    generator: torch.nn.Module | None = None,
) -> Path:
    """Translate every image of a dataset root into `to_domain` style; return out_root.

    `generator` (optional) is the already loaded generator of `checkpoint` (e.g. on a GPU); otherwise it
    is loaded from the checkpoint only if there is work to do. Raises TranslationExistsError when
    out_root holds another translation.
    """
    root, out_root = Path(root), Path(out_root)
    digest = checkpoint_digest(checkpoint)
    samples = list_root(kind, root, split, list_file)
    names_hash = hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]
    record = {
        "checkpoint_sha256": digest,
        "checkpoint": str(checkpoint),
        "to_domain": to_domain,
        "direction": "source->target" if to_domain == 1 else "target->source",
        "kind": kind,
        "split": split,
        "source_root": str(root),
        "list_file": list_file,
        "images": len(samples),
        "names_sha256": names_hash,
    }
    if out_root.exists():
        marker = out_root / MARKER
        if not marker.is_file():
            raise TranslationExistsError(
                f"{out_root}: exists but has no {MARKER}; not overwriting an unknown folder"
            )
        old = json.loads(marker.read_text())
        if old.get("checkpoint_sha256") not in (digest, file_digest(checkpoint)):
            raise TranslationExistsError(
                f"{out_root}: holds a translation by checkpoint sha256 {old.get('checkpoint_sha256')} "
                f"({old.get('checkpoint')}), not by {digest} ({checkpoint}); use another out_root"
            )
        for key in ("to_domain", "kind", "split", "names_sha256"):
            if old.get(key) != record[key]:
                raise TranslationExistsError(
                    f"{out_root}: same checkpoint {digest} but {key} {old.get(key)!r} != {record[key]!r}"
                )
        return out_root

    partial = out_root.parent / f".{out_root.name}.partial-{digest}-{to_domain}"
    if partial.is_dir():  # an interrupted run of the same translation: finished images are skipped
        done = sum(1 for _ in partial.rglob("*.png"))
        log.warning("resuming the interrupted translation in %s (%d images already written)", partial, done)
    if generator is None:  # before anything is written: a bad checkpoint leaves no partial folder
        generator = load_generator(checkpoint, cfg, device)
    partial.mkdir(parents=True, exist_ok=True)

    def layout_fn(s: Sample) -> Path:
        return s.image.relative_to(root)

    translate_dataset(generator, samples, to_domain, partial, layout_fn, batch_size, progress)
    record["mean_change"], record["mean_change_images"] = dataset_change(samples, root, partial)
    for s in samples:
        if s.label is not None:
            link_or_copy(s.label, partial / s.label.relative_to(root))
    write_json(partial / MARKER, record)
    os.replace(partial, out_root)
    return out_root
