import multiprocessing as mp
import time
from pathlib import Path

import pytest

from symda.artifacts import ArtifactStore, artifact_key


def test_reuse_and_invalidation(tmp_path):
    store = ArtifactStore(tmp_path)
    builds = []

    def build(work: Path) -> None:
        builds.append(work)
        (work / "out.txt").write_text("x")

    a = store.get_or_build("stage", {"lr": 1}, None, build)
    b = store.get_or_build("stage", {"lr": 1}, None, build)
    assert not a.reused and b.reused and a.path == b.path and len(builds) == 1
    assert (a.path / "out.txt").read_text() == "x"
    assert store.record("stage", a.key)["config"] == {"lr": 1}
    c = store.get_or_build("stage", {"lr": 2}, None, build)  # own config changed
    d = store.get_or_build("stage", {"lr": 1}, {"upstream": "other"}, build)  # an input changed
    assert len({a.key, c.key, d.key}) == 3 and len(builds) == 3


def test_key_is_order_independent():
    assert artifact_key("s", {"a": 1, "b": 2}, {"x": "1"}) == artifact_key("s", {"b": 2, "a": 1}, {"x": "1"})
    assert artifact_key("s", {"a": 1}) != artifact_key("t", {"a": 1})


def test_failed_build_leaves_nothing_and_resumes(tmp_path):
    store = ArtifactStore(tmp_path)

    def crash(work: Path) -> None:
        (work / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.get_or_build("stage", {}, None, crash)
    assert not store.exists("stage", artifact_key("stage", {}))
    seen = []
    store.get_or_build("stage", {}, None, lambda work: seen.append((work / "partial.txt").read_text()))
    assert seen == ["half"]  # the second build found the first one's partial work


def _slow_build(root: str, tag: str, queue) -> None:
    def build(work: Path) -> None:
        queue.put(("start", tag))
        time.sleep(0.5)
        (work / "who.txt").write_text(tag)

    art = ArtifactStore(root).get_or_build("stage", {"k": 1}, None, build)
    queue.put(("done", tag, art.reused, (art.path / "who.txt").read_text()))


def test_two_concurrent_writers_build_once(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path), tag, queue)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    events = []
    while len([e for e in events if e[0] == "done"]) < 2:
        events.append(queue.get(timeout=10))
    starts = [e for e in events if e[0] == "start"]
    done = [e for e in events if e[0] == "done"]
    assert len(starts) == 1  # only one process built
    assert sorted(e[2] for e in done) == [False, True]  # the other reused its result
    assert done[0][3] == done[1][3] == starts[0][1]
    assert len([p for p in (tmp_path / "stage").iterdir() if not p.name.startswith(".")]) == 1
