"""The main job under a whole-process timer: wall time and CPU use per phase, first run and rerun.

Runs `python tune/sweep_threshold.py` as a newcomer's fresh clone would (its own empty artifact
store, SynthCity folder and sweep storage under --work), then again on the same store (the cached
rerun), `--runs` times. For each run it prints the wall time of every phase (start-up, SynthCity,
each upstream stage, the trials), how many of the machine's cores were busy in it (from /proc/stat,
so run it on a quiet machine), the peak memory of the whole process tree, and the trials' mIoUs.

With --py-spy every run is sampled by py-spy (all processes, Ray's workers included), and the
samples are sorted into stages and phases of a step (data, forward, backward, discriminator,
optimiser, evaluation, checkpoint, Ray bookkeeping): seconds of the main Python thread of each
process, i.e. where the wall time goes.

    python bench/bench_main_job.py --work /tmp/mj                 # one first run + one rerun
    python bench/bench_main_job.py --work /tmp/mj --runs 3        # the median of 3
    python bench/bench_main_job.py --work /tmp/mj --py-spy        # where the time goes
    python bench/bench_main_job.py --work /tmp/mj -- --num-samples 4 --set train.steps=100

Writes DIR/run-<k>-{first,rerun}.log (the job's output), timings.json and, with --py-spy,
profile-<k>-<run>.txt (py-spy's raw stacks) and phases.md. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lines of the job's output that open a phase (regex -> phase name); the first phase is "start-up".
PHASE_MARKERS = [
    (r"^sweep \S+: \d+ trials", "Ray start, checks"),
    (r"generating SynthCity", "SynthCity"),
    (r"building translator artifact", "upstream: translator"),
    (r"building translated_\w+ artifact", "upstream: S'/T'/V'"),
    (r"building segmenter_T artifact", "upstream: adapt F_T"),
    (r"building segmenter_S artifact", "upstream: adapt F_S"),
    (r"^upstream \(\w+\) ready in", "trials"),
    (r"^== \d+ trials by", "summary"),
]


# ------------------------------------------------------------------------------------ measurements


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def tree_rss(root_pid: int) -> int:
    """Resident memory (bytes) of `root_pid` and all its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        pid = int(stat.parent.name)
        children[int(fields[1])].append(pid)  # field 4 of stat: ppid
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


TRIAL_WORKER = re.compile(r"ray::(ImplicitFunc|run_trial)")  # Ray's process title of a Tune trial


def attach_spy(pid: int, out: Path, rate: int) -> subprocess.Popen:
    """py-spy on one process (its Python threads), raw stacks to `out` when the process ends."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--nonblocking", "-r", str(rate), "-f", "raw",
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def run_job(cmd: list[str], log_path: Path, env: dict[str, str], cwd: Path, spy_prefix: Path | None = None,
            rate: int = 20) -> dict:  # fmt: skip
    """Run `cmd`, tee its output to `log_path`; return wall time, phases and peak tree memory.

    A phase starts at the first output line matching its PHASE_MARKERS entry; each phase reports its
    wall seconds and the machine's busy cores over that time. With `spy_prefix`, py-spy samples the
    job's process (<prefix>-driver.txt) and every Tune trial worker once it has taken a trial
    (<prefix>-trial-<pid>.txt): one sampler per process, not py-spy's --subprocesses, which loses
    Ray's workers (raylet starts them) and samples every idle Ray daemon besides.
    """
    samples: list[tuple[float, int, int]] = []  # (time, busy, total) jiffies
    peak = [0]
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter() - t0, *cpu_jiffies()))
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.5)

    spies: dict[int, subprocess.Popen] = {}
    if spy_prefix is not None:
        spies[proc.pid] = attach_spy(proc.pid, Path(f"{spy_prefix}-driver.txt"), rate)

    def watch_trials() -> None:
        while spy_prefix is not None and not done.is_set():
            for entry in Path("/proc").glob("[0-9]*"):
                pid = int(entry.name)
                if pid not in spies and TRIAL_WORKER.search(cmdline(pid)):
                    spies[pid] = attach_spy(pid, Path(f"{spy_prefix}-trial-{pid}.txt"), rate)
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watcher = threading.Thread(target=watch_trials, daemon=True)
    watcher.start()
    starts = [(0.0, "start-up")]
    with open(log_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            log.flush()  # so the log can be watched while the job runs
            now = time.perf_counter() - t0
            for pattern, phase in PHASE_MARKERS:
                if re.search(pattern, line) and phase != starts[-1][1]:
                    starts.append((now, phase))
    rc = proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    watcher.join()
    for spy in spies.values():  # each ends with its process and writes its file
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.terminate()
    samples.append((wall, *cpu_jiffies()))
    return {
        "rc": rc,
        "wall_s": wall,
        "peak_rss_gb": peak[0] / 2**30,
        "phases": phase_table(starts, wall, samples),
    }


def phase_table(
    starts: list[tuple[float, str]], wall: float, samples: list[tuple[float, int, int]]
) -> list[dict]:
    """Per phase (merged by name, in order of first appearance): seconds and busy cores."""
    ncpu = os.cpu_count() or 1
    merged: dict[str, dict[str, float]] = {}
    bounds = [*starts, (wall, "")]
    for (begin, name), (end, _) in zip(bounds, bounds[1:], strict=False):
        inside = [s for s in samples if begin <= s[0] <= end]
        busy = total = 0
        if len(inside) >= 2:
            busy, total = inside[-1][1] - inside[0][1], inside[-1][2] - inside[0][2]
        row = merged.setdefault(name, {"seconds": 0.0, "busy": 0, "total": 0})
        row["seconds"] += end - begin
        row["busy"] += busy
        row["total"] += total
    return [
        {"phase": name, "seconds": r["seconds"],
         "busy_cores": ncpu * r["busy"] / r["total"] if r["total"] else float("nan")}
        for name, r in merged.items()
    ]  # fmt: skip


def store_state(store: Path) -> dict[str, float]:
    """{artifact or unfinished build folder: newest mtime of a file in it} of an artifact store."""
    out = {}
    for folder in store.glob("*/*"):
        if folder.is_dir():
            files = [f.stat().st_mtime for f in folder.rglob("*") if f.is_file()]
            out[str(folder.relative_to(store))] = max(files, default=folder.stat().st_mtime)
    return out


def store_changes(before: dict[str, float], after: dict[str, float]) -> dict[str, list[str]]:
    """What a run did to the store: artifacts it finished, unfinished builds it wrote to."""
    built = [k for k in after if k not in before and not k.split("/")[1].startswith(".")]
    touched = [k for k, t in after.items() if k.split("/")[1].startswith(".") and t > before.get(k, 0)]
    return {"built": sorted(built), "builds_written": sorted(touched)}


def trial_mious(storage: Path) -> list[dict]:
    """The trials of the newest sweep under `storage`: params and last mIoU (its trials.csv)."""
    import pandas as pd

    found = sorted(storage.glob("*/trials.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        return []
    table = pd.read_csv(found[-1])
    return table.drop(columns=[c for c in ("error",) if c in table]).to_dict("records")


# --------------------------------------------------------------------------------- py-spy phases

# (stage, any of these function names in the stack); the first match from the top of the list wins.
STAGES = [
    ("SynthCity", ("generate_synthcity",)),
    ("data checks", ("check_samples",)),
    ("translator", ("train_translator",)),
    ("S'/T'/V'", ("translate_root",)),
    ("pseudo labels", ("generate_pseudo_labels",)),
    ("final evaluation", ("evaluate_method",)),
    ("segmenter", ("train_segmenter",)),
    ("store lookups, replays", ("get_or_build", "replay_evaluations")),
    ("summary", ("summarize", "print_summary")),
]
# Phases of a step inside a stage; again the first match wins, so a containing phase (evaluation,
# the discriminator's update) claims the forward and backward passes inside it. A rule is a function
# name, or a path fragment of the frame's file ("torch/optim/").
PHASES = [
    ("checkpoint", ("save_checkpoint", "write_checkpoint", "atomic_torch_save")),
    (
        "evaluation",
        ("evaluate_model", "evaluate_pair", "unsupervised_scores", "save_samples", "sample_grid"),
    ),
    ("data", ("__next__", "_next_data", "__getitem__", "build_dataset", "domain_loaders")),
    ("discriminator", ("update", "critic_update")),
    ("generator", ("generator_update",)),
    ("backward", ("backward", "_engine_run_backward")),
    ("optimiser", ("torch/optim/",)),
    (
        "losses",
        ("segmentation_loss", "pseudo_label_loss", "probabilities", "generator_loss", "loss"),
    ),
    ("forward", ("_call_impl", "_wrapped_call_impl", "forward")),
    ("report", ("report", "tagged_report", "recording_report")),
]


def frames(stack: str) -> list[tuple[str, str]]:
    """'f (file.py:12);C.g (x.py:3)' -> [('f', 'file.py'), ('g', 'x.py')], outermost first, process and
    thread entries dropped; a method's class and <locals> prefixes are dropped from its name."""
    out = []
    for part in stack.split(";"):
        if part.startswith(("process ", "thread ")):
            continue
        name, _, where = part.partition(" (")
        out.append((name.split(".")[-1], where.rsplit(":", 1)[0]))
    return out


def matches(rule: str, frame: tuple[str, str]) -> bool:
    return rule in frame[1] if "/" in rule else rule == frame[0]


def classify(stack: str) -> tuple[str, str]:
    """(stage, phase) of one py-spy raw stack."""
    fs = frames(stack)
    if not any("symda/" in f or "tune/sweep" in f for _, f in fs):
        if any(n == "_find_and_load" for n, _ in fs):
            return "imports", ""
        return "Ray / Tune (no symda frame)", ""
    if any(n == "_find_and_load" for n, _ in fs):
        return "imports", ""
    stage = next((s for s, names in STAGES if any(n in names for n, _ in fs)), "other symda code")
    phase = next((p for p, rules in PHASES if any(matches(r, f) for r in rules for f in fs)), "other")
    return stage, phase


def profile_table(files: list[Path], rate: int) -> dict[tuple[str, str, str], float]:
    """Seconds per (process, stage, phase) in py-spy raw files recorded at `rate` Hz.

    Only the thread that runs symda's code counts (Ray's and torch's helper threads idle or serve it),
    and the Ray bookkeeping of the process's main thread when no symda frame is on it."""
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for path in files:
        where = "trial worker" if "-trial-" in path.name else "driver"
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or ("symda/" not in stack and "MainThread" not in stack):
                continue
            out[(where, *classify(stack))] += int(count) / rate
    return dict(out)


def print_profile(table: dict[tuple[str, str, str], float], title: str) -> str:
    """A markdown table of `profile_table`: stages by total seconds, phases by seconds within each."""
    stage_total: dict[tuple[str, str], float] = defaultdict(float)
    for (w, st, _), v in table.items():
        stage_total[(w, st)] += v
    rows = sorted(table.items(), key=lambda kv: (kv[0][0], -stage_total[kv[0][:2]], -kv[1]))
    text = [
        f"### {title}",
        "",
        "| process | stage | phase | seconds | share of the stage |",
        "| --- | --- | --- | --- | --- |",
    ]
    text += [
        f"| {w} | {st} | {ph} | {v:.1f} | {v / stage_total[(w, st)]:.0%} |"
        for (w, st, ph), v in rows
        if v >= 0.5
    ]
    print("\n".join(text) + "\n", flush=True)
    return "\n".join(text) + "\n"


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="scratch folder (emptied first): store, data, sweeps, logs")
    p.add_argument("--runs", type=int, default=1, help="first run + rerun pairs (default 1)")
    p.add_argument("--no-rerun", action="store_true", help="first runs only")
    p.add_argument("--py-spy", action="store_true", help="sample every run with py-spy")
    p.add_argument("--rate", type=int, default=20, help="py-spy samples per second (default 20)")
    p.add_argument(
        "--repo", type=Path, default=ROOT, help="the checkout whose main job runs (default: this one)"
    )
    p.add_argument("--python", default=sys.executable, help="its interpreter (default: this one)")
    p.add_argument("job_args", nargs="*", help="after --: extra flags of tune/sweep_threshold.py")
    args = p.parse_args()
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    results, profiles = [], []
    for k in range(args.runs):
        run_dir = work / f"run-{k}"  # every pair starts from an empty store, as a fresh clone does
        base = [
            "tune/sweep_threshold.py", "--storage", str(run_dir / "sweeps"),
            "--set", f"artifacts_dir={run_dir / 'artifacts'}", "--set", f"synth.root={run_dir / 'data'}",
            *args.job_args,
        ]  # fmt: skip
        for kind in ("first",) if args.no_rerun else ("first", "rerun"):
            cmd = [args.python, *base]
            spy = work / f"profile-{k}-{kind}" if args.py_spy else None
            print(f"== run {k} ({kind}): {' '.join(cmd)}", flush=True)
            before = store_state(run_dir / "artifacts")
            r = run_job(cmd, work / f"run-{k}-{kind}.log", env, args.repo.resolve(), spy, args.rate)
            changes = store_changes(before, store_state(run_dir / "artifacts"))
            r.update(run=k, kind=kind, trials=trial_mious(run_dir / "sweeps"), store=changes)
            results.append(r)
            print(
                f"   exit {r['rc']}, {r['wall_s']:.0f} s ({r['wall_s'] / 60:.1f} min), peak {r['peak_rss_gb']:.2f} GiB; "
                f"store: {len(changes['built'])} artifacts built, {len(changes['builds_written'])} unfinished builds "
                "written (a rerun that trains nothing: 0 and 0)"
            )
            for ph in r["phases"]:
                print(f"   {ph['phase']:<24}{ph['seconds']:>8.1f} s{ph['busy_cores']:>7.2f} cores busy")
            for t in r["trials"]:
                print(
                    f"   trial {t.get('trial_id')}: miou {t.get('miou', float('nan')):.2f} progress {t.get('progress')} {t.get('status')}"
                )
            if spy is not None:
                files = sorted(work.glob(f"{spy.name}-*.txt"))
                profiles.append(print_profile(profile_table(files, args.rate), f"run {k} ({kind})"))
            (work / "timings.json").write_text(json.dumps(results, indent=1, default=str))
    for kind in ("first", "rerun"):
        walls = [r["wall_s"] for r in results if r["kind"] == kind]
        if walls:
            print(
                f"{kind}: median {statistics.median(walls):.0f} s of {len(walls)} ({', '.join(f'{w:.0f}' for w in walls)})"
            )
    if profiles:
        (work / "phases.md").write_text("\n".join(profiles))


if __name__ == "__main__":
    main()
