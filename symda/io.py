"""Small file helpers shared by every stage: atomic writes and JSON records.

Every output is written under a temporary name and renamed into place, so an interrupted run never
leaves a half-written file where a finished one is expected.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of atomic writes (".<name>.<random>.tmp") under `folder`: what a
    process killed in the middle of a write leaves behind. Only for a folder no live process writes
    into (a store build under its lock, a run folder being continued). Returns what was removed."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are meant to be read by others (shared stores)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON (NaN allowed: pandas reads it back)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=jsonable) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document in `path`."""
    return json.loads(Path(path).read_text())


def jsonable(obj: Any) -> Any:
    """json.dumps' default: numpy arrays and scalars as lists and numbers, paths as strings."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save through a temporary file, so a checkpoint is either the old one or the new one.

    Serialised in memory first: torch.save writing to a file that cannot grow (disk full, file-size
    limit) fails with a RuntimeError from its zip writer ("unexpected pos ..."), while a plain write
    fails with the OSError (ENOSPC, EFBIG) and file name that the command line reports clearly."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def png_bytes(image: Any, compress_level: int = 6) -> bytes:
    """PNG encoding of a PIL image or a uint8 array ((H, W) grey / label ids, or (H, W, 3) RGB).

    compress_level 1 is several times faster for files that are written once and read back soon."""
    import io

    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def link_or_copy(src: Path, dst: Path) -> Path:
    """Hard-link `src` at `dst` (no extra space, same bytes); copy where links are impossible.

    Atomic: the link or copy is made under a temporary name and renamed over `dst`.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)  # os.link refuses an existing name; the unique name stays ours in practice
    try:
        try:
            os.link(src, tmp)
        except OSError:
            atomic_write_bytes(Path(tmp), Path(src).read_bytes())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


# ------------------------------------------------------------------------ files a user hands us


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


def load_tensors(path: Path | str, what: str) -> Any:
    """torch.load(path) on the CPU with weights_only=True: tensors, numbers, strings and containers of
    them, never code. CheckpointError naming the file for a missing, empty, unreadable or foreign one,
    and for one whose pickle names any other Python object (the object is named, never built).

    what: the kind of file, for the message ("translator checkpoint", "model.weights file").
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: {what} is empty (0 bytes): an interrupted copy or save?")
    try:
        # weights_only: a file a user hands us is data, never code (a crafted pickle runs whatever it
        # names the moment it is unpickled; torch's unpickler refuses every global not on its list).
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        if isinstance(err, pickle.UnpicklingError) and (name := refused_global(str(err))):
            raise CheckpointError(
                f"{path}: {what} refused: its pickle calls for the Python object {name}, and symda "
                "unpickles only tensors and plain values (a checkpoint is data, never code; nothing in "
                "it was run). Save state dicts only; for a file from a source you trust, "
                "`symda checkpoint upgrade` rewrites it as data"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable {what} ({type(err).__name__}: {first}); truncated, or not a torch checkpoint"
        ) from None


def refused_global(message: str) -> str | None:
    """The Python object a weights_only load refused to build ("posix.system"), from torch's message
    (its wording differs between torch releases), or None when the message names none."""
    import re

    found = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL)\s+([\w.]+)", message, re.IGNORECASE)
    return found.group(1) if found else None
