"""Faults the platform survives, on the CPU: a stage killed and resumed gives the bit-identical result,
a full disk while an artifact is written leaves nothing registered and a rerun builds it."""

import json
import resource
import signal
import subprocess
import sys
import textwrap
import time

from symda.artifacts import MARKER, ArtifactStore

TRAIN = ["--set", "translate.enabled=false", "--set", "train.batch_size=2", "--set", "train.log_every=5",
         "--set", "train.checkpoint_every=5", "--set", "train.steps=40", "--set", "data.source_size=[32, 64]",
         "--set", "data.target_size=[32, 64]", "--set", "train.threads=1"]  # fmt: skip


def symda(*args: str) -> list[str]:
    return [sys.executable, "-m", "symda", *args]


def test_a_killed_and_resumed_stage_gives_the_bit_identical_result(tiny_data, tmp_path):
    data = [
        "--set",
        f"data.source_root={tiny_data['source']}",
        "--set",
        f"data.target_root={tiny_data['target']}",
    ]
    straight = tmp_path / "straight"
    subprocess.run(symda("train", *data, *TRAIN, "--out", str(straight)), check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(symda("train", *data, *TRAIN, "--out", str(killed)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"
    subprocess.run(
        symda("train", *data, *TRAIN, "--resume", "--out", str(killed)), check=True, capture_output=True
    )

    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["val_miou"] == a["val_miou"] and b["val_per_class_iou"] == a["val_per_class_iou"]


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    from symda.artifacts import ArtifactStore
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    store = ArtifactStore(sys.argv[1])
    def build(work):
        (work / "weights.bin").write_bytes(b"0" * 100_000)
    try:
        store.get_or_build("pseudo", {"k": 1}, None, build)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
""")


def test_a_full_disk_while_an_artifact_is_written_registers_nothing(tmp_path):
    store_dir = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(store_dir)], capture_output=True, text=True)
    assert proc.returncode == 2 and "File too large" in proc.stderr and "Traceback" not in proc.stderr
    store = ArtifactStore(store_dir)
    built = [p for p in (store_dir / "pseudo").iterdir() if not p.name.startswith(".")]
    assert built == []  # nothing registered: only the hidden work folder is left
    assert [b.stage for b in store.unfinished()] == ["pseudo"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert soft == resource.RLIM_INFINITY or soft > 100_000
    artifact = store.get_or_build(
        "pseudo", {"k": 1}, None, lambda w: (w / "weights.bin").write_bytes(b"0" * 100_000)
    )
    assert not artifact.reused and (artifact.path / MARKER).is_file()
    assert (artifact.path / "weights.bin").stat().st_size == 100_000
    assert store.unfinished() == []  # the rerun finished in the same work folder and moved it into place


CLI_DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # logs fit, a checkpoint does not
    from symda.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_full_disk_during_training_ends_with_a_clear_error(tiny_data, tmp_path):
    data = [
        "--set",
        f"data.source_root={tiny_data['source']}",
        "--set",
        f"data.target_root={tiny_data['target']}",
    ]
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CLI_DISK_FULL, "train", *data, *TRAIN, "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: cannot write" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    assert not list(out.glob(".checkpoint.pt.*"))  # no temporary file left either


def test_symda_run_killed_at_random_moments_continues_to_the_bit_identical_result(tmp_path):
    """The kill-anywhere harness (bench/bench_kill_anywhere.py, K >= 20 there) with K = 3 seeded moments
    on its tiniest config: SIGKILL of the whole process tree, the same command again after each kill;
    result.json and every artifact equal the uninterrupted run's, nothing left half-written."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_kill_anywhere.py"
    spec = importlib.util.spec_from_file_location("bench_kill_anywhere", path)
    harness = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(harness)
    verdict = harness.kill_anywhere(tmp_path, kills=3, seed=1, per_chain=3, show=lambda line: None)
    assert verdict.ok, verdict.differences
    assert sum(not k.finished_first for k in verdict.kills) == 3
