"""Reading checkpoints a user points at: one clear error for a missing, empty, truncated or foreign
file, and for a segmenter of another architecture, the tensors that differ and the model.* settings
that would match it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import torch

from symda.io import CheckpointError, load_tensors


def read_checkpoint(path: Path, what: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dict saved in `path` (on the CPU, weights_only: see load_tensors), or CheckpointError naming
    the file.

    what: the kind of file, for the message ("translator checkpoint"); required: keys it must hold.
    """
    blob = load_tensors(path, what)
    if not isinstance(blob, dict):
        raise CheckpointError(
            f"{path}: not a {what}: it holds a {type(blob).__name__}, not a dict of tensors"
        )
    missing = [k for k in required if k not in blob]
    if missing:
        raise CheckpointError(
            f"{path}: not a {what}: no {', '.join(map(repr, missing))} in it (it has {_keys(blob)})"
        )
    return blob


def _keys(blob: dict[str, Any], n: int = 6) -> str:
    keys = list(blob)
    return ", ".join(map(repr, keys[:n])) + (f", ... ({len(keys)} keys)" if len(keys) > n else "")


def segmenter_state(blob: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The network's state dict in a segmenter checkpoint ({"model": state} or a bare state dict)."""
    state = blob.get("model", blob)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path}: not a segmenter checkpoint: no tensors under 'model' (it has {_keys(blob)})"
        )
    return state


def matching_model_settings(state: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Every model.* setting (backbone, last_layer, aux_head, number of ASPP branches) whose network has
    exactly the tensors and shapes of `state`. Built on the meta device: no memory, milliseconds each."""
    from symda.config import ModelConfig
    from symda.models.deeplabv2 import build_deeplabv2

    shapes = {k: tuple(v.shape) for k, v in state.items()}
    branches = _aspp_branches(shapes)
    default = tuple(ModelConfig().aspp_dilations)
    dilations = default[:branches] if branches else default  # only their number shapes the tensors
    out = []
    for backbone, last_layer, aux in itertools.product(
        ("resnet18", "resnet34", "resnet50", "resnet101"), ("layer3", "layer4"), (False, True)
    ):
        with torch.device("meta"):
            model = build_deeplabv2(backbone, last_layer=last_layer, aspp_dilations=dilations, aux_head=aux)
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if own == shapes:
            out.append({"model.backbone": backbone, "model.last_layer": last_layer, "model.aux_head": aux,
                        "model.aspp_dilations": f"{branches} values"})  # fmt: skip
    return out


def _aspp_branches(shapes: dict[str, tuple[int, ...]]) -> int:
    """Number of ASPP branches of the main classifier in a state dict (0 when it has none)."""
    prefix = "classifier.conv2d_list."
    return len({k[len(prefix) :].split(".")[0] for k in shapes if k.startswith(prefix)})


def load_model_state(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, settings: str
) -> None:
    """model.load_state_dict(state), or CheckpointError saying which tensors differ and which model.*
    settings would match the file. settings: the current ones, for the message."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} here"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if not (missing or unexpected or shapes):
        model.load_state_dict(state)
        return
    parts = []
    if shapes:
        parts.append(
            f"{len(shapes)} tensors of another shape ({'; '.join(shapes[:3])}{'; ...' if len(shapes) > 3 else ''})"
        )
    if missing:
        parts.append(
            f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    if unexpected:
        parts.append(
            f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})"
        )
    matches = matching_model_settings(state)
    hint = (
        "it matches " + " | ".join(" ".join(f"--set {k}={v}" for k, v in m.items() if k != "model.aspp_dilations")
                                   for m in matches)
        if matches else "no model.* setting of symda matches it"
    )  # fmt: skip
    raise CheckpointError(
        f"{path}: a network of another architecture than {settings}: {', '.join(parts)}; {hint}"
    )


def as_data(obj: Any, where: str, dropped: list[str]) -> Any:
    """`obj` with only what a weights_only load reads back: tensors, numbers, strings, bytes, None and
    dicts / lists / tuples of them; numpy arrays become tensors and numpy scalars numbers; anything
    else is left out and named ("<where>: <type>") in `dropped`. Returns None for a left-out object."""
    import numpy as np

    if obj is None or isinstance(
        obj, (bool, int, float, str, bytes, torch.Tensor, torch.dtype, torch.device)
    ):
        return obj
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool)):
                dropped.append(f"{where}[{key!r}]: a key of type {type(key).__name__}")
                continue
            kept = as_data(value, f"{where}[{key!r}]", dropped)
            if kept is not None or value is None:
                out[key] = kept
        return out
    if isinstance(obj, (list, tuple)):
        kept = [as_data(v, f"{where}[{i}]", dropped) for i, v in enumerate(obj)]
        return kept if isinstance(obj, list) else tuple(kept)
    dropped.append(f"{where}: {type(obj).__module__}.{type(obj).__qualname__}")
    return None


# numpy's constructors of arrays and scalars: data, and harmless to call (unlike, say, numpy.load).
NUMPY_DATA_GLOBALS = {f"{m}.{n}" for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                      for n in ("_reconstruct", "scalar")} | {"numpy.ndarray", "numpy.dtype"}  # fmt: skip


def stand_in(name: str) -> type:
    """A class named like the global `name` ("module.qualname") that holds what the pickle hands it and
    runs nothing: loading a foreign pickle with these in place of its classes imports no module and
    calls none of its code. `as_data` then leaves the stand-ins out under the original's name."""
    module, _, qualname = name.rpartition(".")

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def setstate(self: Any, state: Any) -> None:
        self.state = state

    return type(qualname.rpartition(".")[2], (), {"__module__": module, "__qualname__": qualname,
                                                   "__init__": init, "__setstate__": setstate})  # fmt: skip


def data_globals(name: str) -> Any:
    """The real numpy data constructor (or numpy.dtypes class) `name`, else a stand-in for it."""
    import importlib

    module, _, attr = name.rpartition(".")
    if name in NUMPY_DATA_GLOBALS or module == "numpy.dtypes":
        return getattr(importlib.import_module(module), attr)
    return stand_in(name)


def upgrade_checkpoint(path: Path, out: Path) -> list[str]:
    """Rewrite a checkpoint whose pickle names Python objects as data: `path` is read with a
    weights_only load in which every global it names is a stand-in that runs nothing (numpy's array
    and scalar constructors excepted: data), its tensors and plain values are kept (as_data), and the
    result goes to `out` (never over an existing file), read back with weights_only=True before this
    returns. Returns what was left out ("<where>: <type>")."""
    from symda.io import atomic_torch_save

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if out.exists():
        raise FileExistsError(f"{out}: already exists; symda never writes over a file (pick another --out)")
    from torch.serialization import get_unsafe_globals_in_checkpoint, safe_globals

    try:
        names = get_unsafe_globals_in_checkpoint(path)  # read off the pickle's opcodes: nothing runs
        allowed: list[Any] = [(data_globals(n), n) for n in names]
        if any(n in NUMPY_DATA_GLOBALS for n in names):
            import numpy as np

            # an array's dtype is rebuilt through its DType class, which the pickle does not name
            allowed += [
                getattr(np.dtypes, n) for n in np.dtypes.__all__ if isinstance(getattr(np.dtypes, n), type)
            ]
        with safe_globals(allowed):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure of a foreign pickle is the file's, named
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(err).__name__}: {err})"
        ) from None
    dropped: list[str] = []
    data = as_data(blob, "checkpoint", dropped)
    if data is None:
        raise CheckpointError(f"{path}: holds a {type(blob).__name__}, nothing that is data to keep")
    atomic_torch_save(data, out)
    load_tensors(out, "upgraded checkpoint")  # the promise: a weights_only load reads it
    return dropped
