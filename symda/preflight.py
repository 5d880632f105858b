"""Checks of the user's paths before any work starts: a run that would fail on an unwritable folder or a
missing weights file fails in its first second, naming the key, not after hours of training."""

from __future__ import annotations

import tempfile
from pathlib import Path

from symda.config import ConfigError, ExperimentConfig


def check_writable(path: Path, what: str) -> None:
    """ConfigError unless `path` is (or can be created as) a folder this process can write into.

    Tries a real temporary file in the nearest existing folder: permission bits alone say nothing for
    root, nor about read-only mounts or a full disk.
    """
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what}: {path} cannot be a folder: {probe} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise ConfigError(f"{what}: {path} is not writable ({probe}: {err.strerror or err})") from None


def check_model_weights(cfg: ExperimentConfig) -> None:
    """ConfigError when model.weights names a local file that does not exist (a typo); CheckpointError
    when the file is unreadable or its pickle names Python objects (refused before any work, unrun)."""
    weights = cfg.model.weights
    if weights is None or weights.strip().lower() in ("none", "torch_cache"):
        return
    if not Path(weights).expanduser().is_file():
        from symda.models.deeplabv2 import missing_weights_message  # torch: only on this path

        raise ConfigError(missing_weights_message(weights))
    from symda.io import CheckpointError, load_tensors
    from symda.models.deeplabv2 import _unwrap_state_dict

    path = Path(weights).expanduser()
    try:
        _unwrap_state_dict(load_tensors(path, "model.weights file"), str(path))  # tensors in it, or why not
    except ValueError as err:  # CheckpointError is one: the CLI's exit 2 with the file named
        raise CheckpointError(str(err)) from None


def preflight(cfg: ExperimentConfig, out_dir: Path | None = None, store: bool = True) -> None:
    """Everything a command can check before it starts: the run folder and the artifact store are
    writable, model.weights exists."""
    if out_dir is not None:
        check_writable(out_dir, "--out")
    if store:
        check_writable(Path(cfg.artifacts_dir), "artifacts_dir")
    check_model_weights(cfg)
