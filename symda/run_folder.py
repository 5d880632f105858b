"""A run folder holds one run: a finished run is never modified, an unfinished one is continued only
with the config that started it, and nothing is written before the folder is known to be safe.

`check_run_folder` is called by every command that writes a run folder (`symda train`, `symda run`,
`symda translate train`) before it writes anything. What it refuses, and why:
- a folder with a finished run (metrics.json, the last file `symda train` and `symda run` write; a run
  killed before it, while writing its record, is unfinished): rerunning would overwrite its
  checkpoint and metrics and append a second run to its log (like Lightning's version_N folders and
  Hydra's folder per run, a new command takes a new folder);
- a non-empty folder that is not a run folder (no config.yaml): it holds someone else's files;
- an unfinished run started with another config, in any key that changes what is computed (the
  network, the data, the schedule): its checkpoint and its config.yaml would disagree;
- for `symda train`: an unfinished run with a checkpoint without `--resume` (it would be overwritten),
  and `--resume` with no checkpoint to resume from (a run killed before its first checkpoint starts
  again without `--resume`, in the same folder, with the same config).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from symda.config import ConfigError, ExperimentConfig, flatten, load_config

FINISHED_FILE = "metrics.json"  # written last by every command that finishes a run: the run ended
CHECKPOINT = "checkpoint.pt"
# Keys a continued run may change: where it writes, how often it logs, how many threads it uses.
# Everything else changes the network, the data or the schedule.
OPERATIONAL_KEYS = frozenset({
    "name", "out_dir", "artifacts_dir", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "self_train.eval_every",
    "train.threads", "data.num_workers", "data.cache_mb", "data.check", "eval.batch_size", "synth.auto_generate",
    "track.tensorboard", "scale.parallel_paths",
})  # fmt: skip


class RunFolderError(ConfigError):
    """The run folder cannot take this command; the message says which file and what to do."""


def differing_keys(stored: ExperimentConfig, new: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (stored value, new value)} for every non-operational key whose values differ."""
    a, b = flatten(stored), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
            if k not in OPERATIONAL_KEYS and a.get(k) != b.get(k)}  # fmt: skip


def check_run_folder(out_dir: Path, cfg: ExperimentConfig, command: str, resume: bool = False) -> bool:
    """Raise RunFolderError unless `command` may write its run into out_dir (see the module docstring).

    Returns True when out_dir holds an unfinished run of the same config, which the command continues
    (`symda run`: its stages resume from the store; `symda train --resume`: from its checkpoint), and
    False for a new or empty folder.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"--out {out_dir}: exists and is not a folder")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if not entries:
        if resume:
            raise RunFolderError(
                f"--resume: {out_dir} holds no run (nothing to resume); drop --resume to start one"
            )
        return False
    finished = out_dir / FINISHED_FILE
    if finished.is_file():
        when = datetime.datetime.fromtimestamp(finished.stat().st_mtime).isoformat(timespec="seconds")
        raise RunFolderError(
            f"--out {out_dir}: holds a finished run ({FINISHED_FILE}, written {when}); a finished run is never "
            "modified: choose another --out (or delete that folder yourself to redo the run)"
        )
    config_file = out_dir / "config.yaml"
    if not config_file.is_file():
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RunFolderError(f"--out {out_dir}: not empty ({shown}) and not a symda run folder (no config.yaml); "
                             "choose a new or empty folder")  # fmt: skip
    try:
        stored = load_config(config_file, legacy=True)
    except ConfigError as err:
        raise RunFolderError(
            f"--out {out_dir}: its config.yaml does not load ({err}); choose another --out"
        ) from None
    if command == "train":
        has_checkpoint = (out_dir / CHECKPOINT).is_file()
        if has_checkpoint and not resume:  # starting over would overwrite its checkpoint
            raise RunFolderError(f"--out {out_dir}: holds an unfinished run (checkpoint.pt); continue it with "
                                 "--resume, or choose another --out")  # fmt: skip
        if resume and not has_checkpoint:
            raise RunFolderError(f"--resume: {out_dir / CHECKPOINT} not found: the run there never reached a "
                                 "checkpoint, so there is nothing to resume; drop --resume to start it again")  # fmt: skip
    differ = differing_keys(stored, cfg)
    if differ:
        shown = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in list(differ.items())[:8])
        more = f" (and {len(differ) - 8} more)" if len(differ) > 8 else ""
        raise RunFolderError(
            f"--out {out_dir}: the unfinished run there was started with another config: {shown}{more}. "
            f"Continue it with its own config (--config {config_file}), or choose another --out"
        )
    return True
