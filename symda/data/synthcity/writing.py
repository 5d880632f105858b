"""Writing SynthCity in GTA5's and Cityscapes' on-disk layouts, its manifest, and a sample grid."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from symda.data.labels import LABEL_ID_PALETTE, colorize, label_ids_to_train_ids
from symda.io import atomic_write_bytes, png_bytes
from symda.data.synthcity.appearance import STYLES, render_appearance
from symda.data.synthcity.gap import GAP_FACTORS, DomainSpec, domain_specs
from symda.data.synthcity.layout import LAYOUT_STATS, V1_LAYOUT_FIELDS, sample_layout
from symda.data.synthcity.look import render_look

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # of the v1 preset's files (its manifest keeps this number)
PRESETS = ("v1", "v2")  # v1: a global colour map (the benchmark of symda 0.1); v2: the factored gap (gap.py)
MANIFEST_NAME = "synthcity.json"

# Made-up city names; Cityscapes file names start with the city.
TRAIN_CITIES: tuple[str, ...] = ("alderhaven", "brightwater", "corvale")
VAL_CITIES: tuple[str, ...] = ("dunmore", "elmsford")
CITYSCAPES_FRAME = 19  # every fine-annotated Cityscapes frame is the 20th of its snippet: *_000019_*
_DOMAIN_CODES = {"source": 0, "target": 1, "val": 2}  # RNG stream per (domain, split)


@dataclass(frozen=True)
class _Task:
    """One image to write: which RNG stream, which domain statistics, which files."""

    stream: str  # "source", "target" or "val": the RNG stream
    domain: str  # layout statistics and style
    index: int
    image: str  # paths relative to the dataset root
    label: str
    palettised: bool  # GTA5 labels are "P" PNGs, Cityscapes ones "L"


def _cityscapes_stem(split: str, cities: tuple[str, ...], index: int) -> str:
    city = cities[index % len(cities)]
    return f"{split}/{city}/{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}"


def _tasks(n_source: int, n_target: int, n_val: int) -> list[_Task]:
    tasks = [
        _Task("source", "source", i, f"gta5/images/{i + 1:05d}.png", f"gta5/labels/{i + 1:05d}.png", True)
        for i in range(n_source)
    ]
    for stream, split, cities, n in (
        ("target", "train", TRAIN_CITIES, n_target),
        ("val", "val", VAL_CITIES, n_val),
    ):
        for i in range(n):
            stem = _cityscapes_stem(split, cities, i)
            tasks.append(
                _Task(
                    stream,
                    "target",
                    i,
                    f"cityscapes/leftImg8bit/{stem}_leftImg8bit.png",
                    f"cityscapes/gtFine/{stem}_gtFine_labelIds.png",
                    False,
                )
            )
    return tasks


def sample_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of image `index` in `stream` ("source", "target" or "val"): independent of order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_DOMAIN_CODES[stream], index)))


def render_task(
    seed: int, size: tuple[int, int], task: _Task, specs: dict[str, DomainSpec] | None
) -> tuple[np.ndarray, np.ndarray]:
    """One image of the benchmark: ((H, W, 3) uint8 RGB, (H, W) uint8 labelIds). specs None = v1."""
    rng = sample_rng(seed, task.stream, task.index)
    if specs is None:
        layout = sample_layout(rng, task.domain, *size)
        return render_appearance(layout, rng, STYLES[task.domain]), layout.label_ids()
    spec = specs[task.domain]
    layout = sample_layout(rng, spec.layout, *size)
    return render_look(layout, rng, spec.look), layout.label_ids()


def _write_task(args: tuple[Path, int, tuple[int, int], _Task, dict[str, DomainSpec] | None]) -> None:
    root, seed, size, task, specs = args
    image, label_ids = render_task(seed, size, task, specs)
    label = Image.fromarray(label_ids, mode="L")
    if task.palettised:
        label.putpalette(LABEL_ID_PALETTE.tobytes())  # turns the "L" image into a "P" one
    for rel, im in ((task.image, Image.fromarray(image, mode="RGB")), (task.label, label)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, format="PNG")


def _manifest(
    seed: int,
    size: tuple[int, int],
    n_source: int,
    n_target: int,
    n_val: int,
    preset: str,
    gap: dict[str, float],
    specs: dict[str, DomainSpec] | None,
) -> dict:
    """What defines a dataset; a folder whose manifest differs holds another dataset. v1's is the one
    symda 0.1 wrote, so its datasets are recognised."""
    out = {
        "generator": "symda.data.synthcity",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": [size[0], size[1]],
        "counts": {"source": n_source, "target_train": n_target, "target_val": n_val},
        "cities": {"train": list(TRAIN_CITIES), "val": list(VAL_CITIES)},
    }
    if preset == "v1":
        out["styles"] = {name: asdict(style) for name, style in STYLES.items()}
        out["layout_stats"] = {name: {k: v for k, v in asdict(stats).items() if k in V1_LAYOUT_FIELDS}
                               for name, stats in LAYOUT_STATS.items()}  # fmt: skip
        return out
    return {**out, "version": 2, "preset": preset, "gap": dict(gap),
            "domains": {name: asdict(spec) for name, spec in specs.items()}}  # fmt: skip


def _normalise(obj: dict) -> dict:
    """Round-trip through JSON so tuples and lists compare equal."""
    return json.loads(json.dumps(obj))


def manifest_flags(root: Path, manifest: dict) -> str:
    """The `--set synth.*` flags that describe the dataset at `root` (as its manifest says), so that a
    config reads that dataset: what `symda synth` prints, and what a refusal of the folder repeats."""
    counts = manifest["counts"]
    flags = {"root": root, "preset": manifest.get("preset", "v1"), "seed": manifest["seed"],
             "height": manifest["size"][0], "width": manifest["size"][1], "n_source": counts["source"],
             "n_target": counts["target_train"], "n_val": counts["target_val"]}  # fmt: skip
    if "source_size" in manifest:
        flags.update(source_height=manifest["source_size"][0], source_width=manifest["source_size"][1])
    # The gap's strengths only where they are not the default 1.0 (v2; v1 has none).
    flags.update({f"gap.{k}": v for k, v in manifest.get("gap", {}).items() if v != 1.0})
    return " ".join(f"--set synth.{k}={v}" for k, v in flags.items())


def read_manifest(root: Path) -> dict | None:
    """The manifest of a SynthCity dataset at `root`, or None when there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def generate_synthcity(
    out: Path,
    seed: int = 0,
    size: tuple[int, int] = (128, 256),
    n_source: int = 1500,
    n_target: int = 1000,
    n_val: int = 250,
    workers: int = 2,
    progress: bool = True,
    preset: str = "v2",
    gap: dict[str, float] | None = None,
    source_size: tuple[int, int] | None = None,
) -> Path:
    """Write a SynthCity dataset to `out` and return `out`.

    preset "v2" (the default): the factored gap of gap.py at strengths `gap` ({factor: 0..1}; None =
    every factor at 1); "v1": symda 0.1's benchmark (a global colour map), byte for byte.

    size: (H, W) of every image; source_size: of the source domain's when it differs (GTA5's real
    frames are 1052x1914, Cityscapes' 1024x2048). Deterministic per seed, whatever `workers`. The dataset is built in a
    temporary sibling directory and moved into place at the end, so `out` is either complete or absent.
    If `out` already holds a dataset with the same manifest it is reused; anything else at `out` is an error.
    workers > 1 uses a 'spawn' process pool (safe next to torch threads), so a script that calls this at
    import level needs the usual `if __name__ == "__main__":` guard.
    """
    out = Path(out)
    if preset not in PRESETS:
        raise ValueError(f"synth.preset: {preset!r} is not one of {list(PRESETS)}")
    gap = {f: 1.0 for f in GAP_FACTORS} if gap is None else {f: float(gap[f]) for f in GAP_FACTORS}
    specs = domain_specs(seed, gap) if preset == "v2" else None
    source_size = tuple(source_size) if source_size and tuple(source_size) != tuple(size) else None
    expected = _normalise(_manifest(seed, size, n_source, n_target, n_val, preset, gap, specs))
    if source_size:  # only then: the manifests of datasets written before the option stay equal
        expected["source_size"] = [int(source_size[0]), int(source_size[1])]
    if out.exists():
        _check_existing(out, expected)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        jobs = [
            (tmp, seed, tuple(int(v) for v in (source_size if source_size and task.stream == "source" else size)),
             task, specs)
            for task in _tasks(n_source, n_target, n_val)
        ]
        bar = tqdm(total=len(jobs), desc=f"SynthCity -> {out}", unit="img", disable=not progress)
        if workers > 1 and len(jobs) > 1:
            # spawn: safe even when the caller has torch/OpenMP threads running (fork is not).
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_task, jobs, chunksize=16):
                    bar.update()
        else:
            for job in jobs:
                _write_task(job)
                bar.update()
        bar.close()
        (tmp / MANIFEST_NAME).write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        try:
            os.replace(tmp, out)
        except OSError:
            # Someone else finished the same dataset first: fine if it is the same one.
            if out.exists():
                _check_existing(out, expected)
                shutil.rmtree(tmp, ignore_errors=True)
                return out
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def remove_stale_tmp(out: Path) -> list[Path]:
    """Remove the temporary folders of generations of `out` whose process is gone (killed: its
    `except` never ran), saying so; a live process's folder is left alone. Returns what was removed."""
    removed = []
    for stale in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        try:
            pid = int(stale.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if _alive(pid):
            continue
        log.warning("removing %s: the temporary folder of an interrupted generation (pid %d is gone)", stale, pid)
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _check_existing(out: Path, expected: dict) -> None:
    found = read_manifest(out)
    if found is None:
        raise FileExistsError(
            f"{out} exists but is not a SynthCity dataset (no {MANIFEST_NAME}); remove it or pick another path"
        )
    if found != expected:
        keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        raise FileExistsError(
            f"{out} holds a different SynthCity dataset (manifest differs in {', '.join(keys)}: another "
            "synth.preset, gap, seed, size or count); to use the dataset that is there: "
            f"{manifest_flags(out, found)}; else remove it or pick another path (synth.root)"
        )


def _read_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W, 3) colourised trainIds, read from disk as the loaders would."""
    image = np.asarray(Image.open(image_path).convert("RGB"))
    label_ids = np.asarray(Image.open(label_path))  # never convert: "P" values are the labelIds
    return image, colorize(label_ids_to_train_ids(label_ids))


def _at_height(array: np.ndarray, height: int, nearest: bool) -> np.ndarray:
    """(H, W, 3) uint8 resized to `height` rows, aspect kept (nearest for colourised labels)."""
    img = Image.fromarray(array)
    width = max(1, round(img.width * height / img.height))
    return np.asarray(img.resize((width, height), Image.NEAREST if nearest else Image.BILINEAR))


def save_sample_grid(root: Path, out_png: Path, n: int = 4) -> Path:
    """A PNG of the first n source and n target-val pairs under `root`: rows of
    [source image | source label | target image | target label]. Returns out_png."""
    root, out_png = Path(root), Path(out_png)
    src = sorted((root / "gta5" / "images").glob("*.png"))[:n]
    tgt = sorted((root / "cityscapes" / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))[:n]
    if not src or not tgt:
        raise FileNotFoundError(f"{root} holds no SynthCity source/target-val images to show")
    rows = []
    for k in range(min(len(src), len(tgt))):
        s_img, s_lab = _read_pair(src[k], root / "gta5" / "labels" / src[k].name)
        t_lab_path = Path(
            str(tgt[k])
            .replace("leftImg8bit", "gtFine", 1)
            .replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        )
        t_img, t_lab = _read_pair(tgt[k], t_lab_path)
        if s_img.shape[0] != t_img.shape[0]:  # a source of another size (synth.source_height): shown at the target's height
            s_img, s_lab = (_at_height(a, t_img.shape[0], nearest) for a, nearest in ((s_img, False), (s_lab, True)))
        gap = np.full((s_img.shape[0], 4, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([s_img, s_lab, gap, t_img, t_lab], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    grid = Image.fromarray(np.concatenate(rows[:-1], axis=0))
    header = Image.new("RGB", (grid.width, 14), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    draw.text((2, 1), "source (GTA5 layout): image | label", fill=(0, 0, 0))
    draw.text((grid.width // 2 + 4, 1), "target val (Cityscapes layout): image | label", fill=(0, 0, 0))
    canvas = Image.new("RGB", (grid.width, grid.height + header.height), (255, 255, 255))
    canvas.paste(header, (0, 0))
    canvas.paste(grid, (0, header.height))
    return atomic_write_bytes(out_png, png_bytes(canvas))  # atomic: runs may write it side by side
