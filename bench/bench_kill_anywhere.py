"""Kill anywhere: `symda run` on a tiny config, SIGKILLed (the whole process tree: the background F_S
process too) at K seeded random moments spread over the run, continued after each kill with the same
command; the final result.json and every artifact in the store are compared with an uninterrupted
run's: bit-identical tensors, equal records (timings aside), no work folder or temporary file left.

    python bench/bench_kill_anywhere.py                # K = 20 kills (chains of up to 4), seed 0; every
                                                       # other one aimed at the next phase in turn
    python bench/bench_kill_anywhere.py --kills 40 --seed 3 --keep /tmp/ka

Prints every kill: its moment, the phase it hit (the store's builds in progress and the run's last
output line), and the verdict. tests/test_faults.py runs the same harness with K = 3.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tiniest config that still runs every stage of the method: SynthCity generation, the translator,
# translation of the three splits, both adaptations (F_S in its own background process), pseudo labels,
# online self-training with evaluations, the final evaluation and the run's record.
TINY = """\
name: tiny
synth: {root: data/synthcity, n_source: 16, n_target: 12, n_val: 8, height: 64, width: 128}
translate: {generator_steps: 6, log_every: 2, sample_every: 3, batch_size: 4, checkpoint_every: 2}
train: {steps: 6, batch_size: 2, log_every: 2, checkpoint_every: 2, threads: 1}
self_train: {steps: 4, eval_every: 2, paths: T}
scale: {parallel_paths: true, precision: fp32}
"""
# Fields of a record that differ between two identical runs: when and how long, not what.
VOLATILE = re.compile(r"^seconds\.|^peak_mb\.|^finished_at$|^git_revision$|^created|seconds$|^wall|^elapsed")
# A phase by the run's last output line (first match wins), as the console shows it.
PHASES = [
    ("record", ("[result]", "target val mIoU", "stage seconds", "checkpoint choice", "Pictures", "- ")),
    ("evaluation", ("val_miou",)),
    ("self-training", ("_r1 step",)),
    ("pseudo labels", ("pseudo_r", "building pseudo")),
    ("adaptation", ("_r0 step", "building segmenter_", "backbone weights")),
    ("translation", ("building translated_",)),
    ("translator", ("translator", "[translate")),
    ("data", ("SynthCity", "synthcity", "check ")),
]
TARGETS = ["startup", "data", "translator", "translation", "adaptation", "adaptation + F_S process",
           "pseudo labels", "self-training", "evaluation", "record"]  # fmt: skip


@dataclass
class Kill:
    chain: int
    after_s: float  # since this (re)start of the command
    phase: str
    finished_first: bool = False  # the command ended before the moment came (no kill)


@dataclass
class Verdict:
    kills: list[Kill] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def command(case: Path) -> list[str]:
    return [sys.executable, "-m", "symda", "run", "--config", str(case / "tiny.yaml"), "--set", "artifacts_dir=store",
            "--out", "run"]  # fmt: skip


def new_case(base: Path, name: str) -> Path:
    case = base / name
    case.mkdir(parents=True)
    (case / "tiny.yaml").write_text(TINY)
    return case


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip


def straight(case: Path) -> float:
    """The uninterrupted run; its wall-clock seconds."""
    t0 = time.monotonic()
    with open(case / "log.txt", "w") as log:
        subprocess.run(command(case), cwd=case, env=env(), stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - t0


def phase_now(case: Path) -> str:
    """Where the run is: its last output line's phase; "adaptation + F_S process" while F_S adapts in
    its background process; "self-training" while F_T's next round builds (the round's labels exist)."""
    log = case / "log.txt"
    text = log.read_text(errors="replace").replace("\r", "\n") if log.is_file() else ""
    attempt = text.rsplit("=== SIGKILL", 1)[-1].split("\n", 1)[-1] if "=== SIGKILL" in text else text
    lines = [x for x in attempt.splitlines() if x.strip()]  # this attempt's lines
    last = lines[-1] if lines else ""
    phase = next(
        (name for name, words in PHASES if any(w in last for w in words)), "startup" if not lines else ""
    )
    building = {p.parent.name for p in (case / "store").glob("*/.*.building")}
    if phase in ("adaptation", "") and "segmenter_S" in building:
        return "adaptation + F_S process"
    if (
        phase in ("adaptation", "")
        and "segmenter_T" in building
        and list((case / "store").glob("pseudo/*/artifact.json"))
    ):
        return "self-training"
    return phase or f"other ({last[:40]})"


def killed_chain(case: Path, chain: int, delays: list[float | str]) -> list[Kill]:
    """Run the command, SIGKILL its process group after each delay (seconds, or a phase of TARGETS: once
    the run is in it), start it again; finally let it finish. Returns the kills (a delay that outlived
    the command, or a kill that came after the run had written its metrics.json, ends the chain)."""
    kills = []
    for delay in delays:
        with open(case / "log.txt", "a") as log:
            proc = subprocess.Popen(command(case), cwd=case, env=env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            t0 = time.monotonic()
            if isinstance(delay, str):  # a phase: kill once the run is in it, a random instant later
                while proc.poll() is None and phase_now(case) != delay:
                    time.sleep(0.02)
                time.sleep(random.Random(f"{chain}{delay}").uniform(0.0, 0.3))
                finished = proc.poll() is not None
            else:
                try:
                    proc.wait(timeout=delay)
                    finished = True
                except subprocess.TimeoutExpired:
                    finished = False
            if finished:
                kills.append(Kill(chain, time.monotonic() - t0, f"(aimed at {delay})", finished_first=True))
                return kills
            phase = phase_now(case)
            delay = time.monotonic() - t0
            os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: the background F_S process too
            proc.wait()
            log.write(f"\n=== SIGKILL after {delay:.2f} s ({phase}) ===\n")
        if (case / "run" / "metrics.json").is_file():
            # Killed after the run had finished (its last file written, the process still shutting
            # down): there is nothing to continue, and the same command rightly refuses the folder.
            kills.append(Kill(chain, delay, "shutdown (the run had finished)"))
            return kills
        kills.append(Kill(chain, delay, phase))
    with open(case / "log.txt", "a") as log:
        done = subprocess.run(command(case), cwd=case, env=env(), stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(
            f"{case}: the continuation failed (exit {done.returncode}); see {case / 'log.txt'}"
        )
    return kills


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a.keys() | b.keys() if not VOLATILE.search(str(k))}
        return all(k in a and k in b and _same(a[k], b[k]) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _same_tensors(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


def compare(ref: Path, case: Path) -> list[str]:
    """Every difference between the uninterrupted run `ref` and the killed-and-continued `case`:
    result.json (timings aside), the store's artifacts file by file (tensors bit for bit), and
    anything left half-done (work folders, temporary files)."""
    import torch

    diffs = []
    a, b = (json.loads((d / "run" / "result.json").read_text()) for d in (ref, case))
    if not _same(a, b):
        keys = sorted(
            k for k in a.keys() | b.keys() if not VOLATILE.search(k) and not _same(a.get(k), b.get(k))
        )
        diffs.append(f"result.json differs in {keys[:8]}")
    for path in sorted((ref / "store").rglob("*")):
        rel = path.relative_to(ref / "store")
        other = case / "store" / rel
        if path.is_dir() or path.name.endswith(".lock"):
            continue
        if not other.is_file():
            diffs.append(f"store/{rel}: missing after the kills")
        elif path.suffix in (".pt", ".pth"):
            if not _same_tensors(torch.load(path, weights_only=True), torch.load(other, weights_only=True)):
                diffs.append(f"store/{rel}: tensors differ")
        elif path.suffix == ".json":
            if not _same(json.loads(path.read_text()), json.loads(other.read_text())):
                diffs.append(f"store/{rel}: differs")
        elif path.suffix == ".jsonl":
            la, lb = ([json.loads(x) for x in p.read_text().splitlines() if x.strip()] for p in (path, other))
            if not _same(la, lb):
                diffs.append(f"store/{rel}: differs ({len(la)} lines, {len(lb)} after the kills)")
        elif path.read_bytes() != other.read_bytes():
            diffs.append(f"store/{rel}: bytes differ")
    extra = sorted(str(p.relative_to(case / "store")) for p in (case / "store").rglob("*")
                   if not p.name.endswith(".lock") and not (ref / "store" / p.relative_to(case / "store")).exists())  # fmt: skip
    diffs += [f"store/{x}: left over (not in the uninterrupted run's store)" for x in extra[:10]]
    leftovers = [
        p for p in case.rglob("*") if p.name.endswith((".building", ".tmp", ".partial")) or ".tmp" in p.name
    ]
    diffs += [f"{p.relative_to(case)}: left over" for p in leftovers[:10]]
    return diffs


def kill_anywhere(
    base: Path, kills: int, seed: int, per_chain: int = 4, show=print, targeted: bool = False
) -> Verdict:
    """The uninterrupted run, then chains of up to `per_chain` kills until `kills` kills landed; each
    chain's final store and record compared with the uninterrupted one's. Every run works in the same
    folder (base/work, renamed after it): a stage's key holds the absolute paths of its inputs."""
    rng = random.Random(seed)
    work = new_case(base, "work")
    seconds = straight(work)
    ref = work.rename(base / "straight")
    show(f"uninterrupted run: {seconds:.1f} s")
    verdict, chain = Verdict(), 0
    while sum(not k.finished_first for k in verdict.kills) < kills:
        left = kills - sum(not k.finished_first for k in verdict.kills)
        # Moments uniform over the whole run's length: a continuation skips what is done, so later
        # kills of a chain land in later phases as often as early ones.
        n = min(per_chain, left)
        if targeted:  # every other kill aimed at the next phase of TARGETS, so short phases are hit too
            delays = [TARGETS[(chain * per_chain + i) // 2 % len(TARGETS)] if i % 2 else rng.uniform(0.3, seconds)
                      for i in range(n)]  # fmt: skip
        else:
            delays = [rng.uniform(0.3, seconds) for _ in range(n)]
        case = new_case(base, "work")
        got = killed_chain(case, chain, delays)
        for k in got:
            show(f"chain {chain:2d}: " + ("finished before its kill" if k.finished_first else "SIGKILL after")
                 + f" {k.after_s:5.2f} s" + (f" {k.phase}" if k.finished_first else f"  in {k.phase}"))  # fmt: skip
        diffs = compare(ref, case)
        case.rename(base / f"chain{chain:02d}")
        shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 6 else "")
        show(f"chain {chain:2d}: " + ("bit-identical to the uninterrupted run" if not diffs else shown))
        verdict.kills += got
        verdict.differences += [f"chain {chain}: {d}" for d in diffs]
        chain += 1
    return verdict


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="kills in all (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments (default 0)")
    p.add_argument(
        "--keep", type=Path, help="keep the runs in this folder (default: a temporary one, removed)"
    )
    p.add_argument("--untargeted", action="store_true",
                   help="every moment uniform over the run (default: every other one aimed at a phase)")  # fmt: skip
    args = p.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
    try:
        verdict = kill_anywhere(base, args.kills, args.seed, targeted=not args.untargeted)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    landed = [k for k in verdict.kills if not k.finished_first]
    phases: dict[str, int] = {}
    for k in landed:
        phases[k.phase] = phases.get(k.phase, 0) + 1
    print(
        f"\n{len(landed)} kills landed; phases hit: "
        + ", ".join(f"{n} {c}" for n, c in sorted(phases.items()))
    )
    print("verdict:", "every continued run bit-identical to the uninterrupted one, nothing left half-done"
          if verdict.ok else f"FAILED: {len(verdict.differences)} differences")  # fmt: skip
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
