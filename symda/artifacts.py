"""Content-addressed store of stage outputs.

An artifact's key is the hash of its stage name, the part of the config that shapes it and the keys
of the artifacts it was built from. So a change anywhere upstream gives every downstream stage a new
key, while a change downstream (a threshold, say) finds every upstream artifact already built.

Layout: `root/<stage>/<key>/` holding the stage's files plus `artifact.json` (stage, key, config,
inputs, build time). An artifact is built in a temporary sibling folder and renamed into place when
complete (a crashed build's work folder is kept, and the next build resumes from it); a lock file per key makes a second process that asks for the same artifact wait for the
first and then reuse its result, so two concurrent writers never corrupt or duplicate it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.io import remove_stale_temporaries, write_json

log = logging.getLogger(__name__)
MARKER = "artifact.json"


@dataclass(frozen=True)
class UnfinishedBuild:
    """A build's work folder (`.<key>.building`): an interrupted build, or one running now (busy)."""

    stage: str
    key: str
    path: Path
    bytes: int
    busy: bool  # a live process holds its lock: building it now


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path
    reused: bool  # True: found in the store; False: built by this call


def artifact_key(stage: str, config: Any, inputs: dict[str, str] | None = None) -> str:
    """16 hex digits of sha256 over (stage, config, input keys); `config` must be JSON-serialisable."""
    blob = json.dumps({"stage": stage, "config": config, "inputs": inputs or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # blocks while another process builds the same artifact
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_locked(lock_path: Path) -> bool:
    """True when another process holds the build lock at lock_path (flock is per open file)."""
    if not lock_path.is_file():
        return False
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


class ArtifactStore:
    """Stage outputs under `root`, keyed by content (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def network_path(self, network: Any, key: str) -> Path:
        """The folder of a segmentation network's artifact (symda.records.NetworkId: its store stage)."""
        return self.path(network.store_stage, key)

    def exists(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / MARKER).is_file()

    def get_or_build(
        self,
        stage: str,
        config: Any,
        inputs: dict[str, str] | None,
        build: Callable[[Path], None],
    ) -> Artifact:
        """The artifact of (stage, config, inputs): found in the store, or built by `build(tmp_dir)`.

        `build(work_dir)` writes the stage's files into the folder it is given; that folder becomes the
        artifact only when `build` returns normally. A failed build leaves nothing in the store, only
        its hidden work folder, from which the next build of the same key resumes.
        """
        key = artifact_key(stage, config, inputs)
        final = self.path(stage, key)
        if (final / MARKER).is_file():
            log.info("reusing %s artifact %s (%s)", stage, key, final)
            return Artifact(stage, key, final, reused=True)
        with _locked(self.root / stage / f".{key}.lock"):
            if (final / MARKER).is_file():  # another process built it while this one waited
                log.info("reusing %s artifact %s, built concurrently (%s)", stage, key, final)
                return Artifact(stage, key, final, reused=True)
            # A stable working folder: a build that crashed (or was killed) left its partial work
            # there, and builds resume from it (the stage loops checkpoint; translation skips
            # finished images). The lock guarantees one builder at a time.
            work = final.with_name(f".{key}.building")
            work.mkdir(parents=True, exist_ok=True)
            # A builder killed in the middle of an atomic write left its temporary file: never part of
            # the artifact (the lock says no live process writes here).
            remove_stale_temporaries(work)
            log.info("building %s artifact %s", stage, key)
            t0 = time.perf_counter()
            build(work)
            write_json(
                work / MARKER,
                {
                    "stage": stage,
                    "key": key,
                    "config": config,
                    "inputs": inputs or {},
                    "build_seconds": time.perf_counter() - t0,
                },  # fmt: skip
            )
            os.replace(work, final)
        return Artifact(stage, key, final, reused=False)

    def unfinished(self) -> list[UnfinishedBuild]:
        """Every build work folder in the store, with its size and whether a process is building it.

        They are kept on purpose (the next build of the same key resumes from them: an ASHA-stopped
        trial's self-training, say), but nothing else needs them; `remove_unfinished` frees the space."""
        out = []
        for work in sorted(self.root.glob("*/.*.building")):
            stage, key = work.parent.name, work.name[1 : -len(".building")]
            size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
            out.append(UnfinishedBuild(stage, key, work, size, _is_locked(work.parent / f".{key}.lock")))
        return out

    def remove_unfinished(self) -> list[UnfinishedBuild]:
        """Delete the work folders no process is building (under their lock); return what was removed."""
        import shutil

        removed = []
        for build in self.unfinished():
            if build.busy:
                continue
            with _locked(build.path.parent / f".{build.key}.lock"):
                if build.path.is_dir():
                    shutil.rmtree(build.path)
                    removed.append(build)
        return removed

    def record(self, stage: str, key: str) -> dict[str, Any]:
        """The artifact.json of a stored artifact."""
        return json.loads((self.path(stage, key) / MARKER).read_text())

    def records(self) -> list[dict[str, Any]]:
        """The artifact.json of every finished artifact in the store (stage, key, config, inputs)."""
        return [json.loads(marker.read_text()) for marker in sorted(self.root.glob(f"*/*/{MARKER}"))]
