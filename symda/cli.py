"""`symda` / `python -m symda`: synth, check-data, train, run, translate, evaluate, diagnose, store, config.

Every command that takes a config accepts `--set KEY=VALUE` (dotted keys, repeatable). Errors in
the user's input (config, dataset) end the command with one clear message and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import logging
import math
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from symda.checkpoints import CheckpointError, read_checkpoint
from symda.config import ConfigError, ExperimentConfig, load_config
from symda.data.dataset import DatasetError
from symda.records import NetworkId, Record

DISK_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES}


def _progress() -> bool:
    return sys.stderr.isatty()


def _add_config_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument(
        "--config", type=Path, required=required, help="experiment YAML (only what differs from defaults)"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set train.lr=1e-3 (repeatable)")  # fmt: skip


def cmd_synth(args: argparse.Namespace) -> int:
    from symda.data import synthcity_source_size
    from symda.data.synthcity import generate_synthcity, manifest_flags, read_manifest, save_sample_grid

    cfg = load_config(args.config, args.overrides)
    s = cfg.synth
    h, w = args.size if args.size else (s.height, s.width)
    out = generate_synthcity(
        Path(args.out or s.root),
        seed=s.seed if args.seed is None else args.seed,
        size=(h, w),
        n_source=s.n_source if args.n_source is None else args.n_source,
        n_target=s.n_target if args.n_target is None else args.n_target,
        n_val=s.n_val if args.n_val is None else args.n_val,
        progress=_progress(),
        preset=s.preset,
        gap=dataclasses.asdict(s.gap),
        source_size=synthcity_source_size(s, (h, w)),
    )
    grid = save_sample_grid(out, out / "samples.png")
    m = read_manifest(out)
    keys = manifest_flags(out, m)
    print(f"SynthCity written to {out}\nsample pairs: {grid}\nuse it with: {keys}")
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HxW, e.g. 128x256") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"--size {text!r}: height and width must be at least 8 pixels")
    return h, w


def _count(text: str) -> int:
    """A number of images: a positive int (0 would silently mean the default, a negative nothing)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of images") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{n}: expected a positive number of images")
    return n


def cmd_check_data(args: argparse.Namespace) -> int:
    from symda.data import check_role, ensure_synthcity

    cfg = load_config(args.config, args.overrides)
    ensure_synthcity(cfg.data, cfg.synth, progress=_progress())
    failed = False
    for role in args.roles:
        report = check_role(cfg.data, cfg.synth, role, progress=_progress())
        print(report.summary())
        failed |= not report.ok
    return 1 if failed else 0


def _run_dir(cfg, out: Path | None) -> Path:
    return Path(out) if out else Path(cfg.out_dir) / cfg.name


@contextlib.contextmanager
def _run_folder(out_dir: Path, cfg: ExperimentConfig, command: str, resume: bool = False) -> Iterator[None]:
    """Check out_dir before anything is written (symda.run_folder); if the command then fails on the
    user's input in a folder that held nothing before, remove what it wrote there: a bad input leaves
    nothing half-written."""
    from symda.preflight import preflight
    from symda.run_folder import check_run_folder

    preflight(cfg, out_dir)
    was_empty = not out_dir.exists() or not any(out_dir.iterdir())
    existed = out_dir.exists()
    if check_run_folder(out_dir, cfg, command, resume):
        from symda.io import remove_stale_temporaries

        remove_stale_temporaries(out_dir)  # continuing a killed run: its half-written files go
    try:
        yield
    except (ConfigError, DatasetError, FileNotFoundError):
        if was_empty and out_dir.is_dir():
            if existed:
                for p in out_dir.iterdir():
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            else:
                shutil.rmtree(out_dir)
        raise


def console_line(record: Record) -> str:
    """One short human line of a report: "[stage step N] key value ...", numbers at 4 significant
    digits; what the record's type leaves out of the console (per-class IoU, the evaluation key) is
    in log.jsonl."""
    head = record.stage
    if "step" in record:
        head = f"{head} step {record['step']}".strip()
    parts = [f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
             for key, value in record.console().items()]  # fmt: skip
    return f"[{head}] " + " ".join(parts) if head else " ".join(parts)


def _printing_report(log_path: Path):
    """A report callback that prints each record as a short line (through tqdm, so that it lands
    above a progress bar instead of inside it) and appends it whole, at full precision, to log_path."""
    from tqdm import tqdm

    from symda.records import append_jsonl

    def report(record: Record, checkpoint: Path | None = None) -> None:
        tqdm.write(console_line(record), file=sys.stdout)
        append_jsonl(log_path, record)

    return report


def cmd_train(args: argparse.Namespace) -> int:
    from symda.pipeline import run_supervised

    cfg = load_config(args.config, args.overrides)
    out_dir = _run_dir(cfg, args.out)
    with _run_folder(out_dir, cfg, "train", args.resume):
        report = _printing_report(out_dir / "log.jsonl")
        metrics = run_supervised(cfg, out_dir, report, resume=args.resume, progress=_progress())
    print(f"target val mIoU {metrics.get('val_miou', float('nan')):.2f}; outputs in {out_dir}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from symda.pipeline import run_experiment

    cfg = load_config(args.config, args.overrides)
    out_dir = _run_dir(cfg, args.out)
    with _run_folder(out_dir, cfg, "run"):
        record = run_experiment(cfg, out_dir, _printing_report(out_dir / "log.jsonl"), progress=_progress())
    print(f"target val mIoU single {record['miou']:.2f}, fused {record['miou_fused']:.2f}; "
          f"record: {out_dir / 'result.json'}")  # fmt: skip
    print(_stage_costs(record))
    if record.get("translation.identity"):
        print(f"WARNING: the translator learned the identity (S' differs from S by "
              f"{record['translation.change']:.2f} grey levels on average): this run adapted without translation")  # fmt: skip
    for line in _selection_lines(record):
        print(line)
    print((out_dir / "pictures.md").read_text(), end="")
    return 0


def cmd_dry_run(args: argparse.Namespace) -> int:
    from symda.dry_run import dry_run_config
    from symda.pipeline import run_experiment

    real = load_config(args.config, args.overrides)
    cfg, weights = dry_run_config(args.config, args.overrides, args.work, args.scale, args.images, args.steps)
    out_dir = Path(args.work).resolve() / "run"
    print(f"dry run of {args.config or 'the defaults'} in {args.work}: SynthCity in the GTA5 and Cityscapes layouts "
          f"(source {cfg.synth.source_height}x{cfg.synth.source_width}, target {cfg.synth.height}x{cfg.synth.width}), "
          f"{args.images} images a domain, {args.steps} steps a stage, on the CPU\n{weights}")  # fmt: skip
    with _run_folder(out_dir, cfg, "run"):
        record = run_experiment(cfg, out_dir, _printing_report(out_dir / "log.jsonl"), progress=_progress())
    print(f"dry run passed; {_stage_costs(record)}")
    print(f"next, with the datasets copied: symda check-data {_config_flags(args)}   "
          f"(source {real.data.source_root or '(SynthCity)'}, target {real.data.target_root or '(SynthCity)'})\n"
          f"then: symda run {_config_flags(args)}")  # fmt: skip
    return 0


def _stage_costs(record: dict) -> str:
    """ "stage seconds / peak MB: data 0.9 s / 740 MB, ..." from a run's record."""
    stages = [k.split(".", 1)[1] for k in record if k.startswith("seconds.")]
    return "stage seconds / peak MB: " + ", ".join(
        f"{st} {record[f'seconds.{st}']:.1f} s / {record.get(f'peak_mb.{st}', math.nan):.0f} MB" for st in stages)  # fmt: skip


def _config_flags(args: argparse.Namespace) -> str:
    """The --config/--set flags of `args` as a command line fragment."""
    flags = [f"--config {args.config}"] if args.config else []
    return " ".join(flags + [f"--set {o}" for o in args.overrides])


def _selection_lines(record: dict) -> list[str]:
    """Per segmenter stage evaluated more than once: which evaluation (step, true val mIoU) the last
    one, an oracle ("best") and each validator would pick, from the record's selection.* keys."""
    from symda.select import VALIDATORS

    lines = []
    stages = sorted({k.split(".")[1] for k in record if k.startswith("selection.")})

    def choice(stage: str, name: str) -> str:
        step, miou = (
            record.get(f"selection.{stage}.{name}.step"),
            record.get(f"selection.{stage}.{name}.miou"),
        )
        return f"{name} {step} ({miou:.2f})" if step is not None else f"{name} n/a"

    for stage in stages:
        delivered = record.get(f"selection.{stage}.delivered")
        lines.append(f"checkpoint choice in {stage} (step (true val mIoU); delivered: step {delivered}): "
                     + ", ".join(choice(stage, n) for n in ("last", "best", *VALIDATORS)))  # fmt: skip
    return lines


def cmd_translate_train(args: argparse.Namespace) -> int:
    from symda.artifacts import ArtifactStore
    from symda.config import save_config
    from symda.pipeline import translator_stage
    from symda.tracking import sample_steps, tensorboard_log

    cfg = load_config(args.config, args.overrides)
    out_dir = _run_dir(cfg, args.out)
    with _run_folder(out_dir, cfg, "translate train"), tensorboard_log(out_dir, cfg.track.tensorboard) as tb:
        save_config(cfg, out_dir / "config.yaml")
        report = tb.wrap(_printing_report(out_dir / "log.jsonl"))
        artifact = translator_stage(cfg, ArtifactStore(cfg.artifacts_dir), report, progress=_progress())
        for step, grid in sample_steps(artifact.path / "samples"):
            tb.image("translate/samples", grid, step)
    state = "reused" if artifact.reused else "trained"
    print(f"translator {state}: {artifact.path / 'translator.pt'}\nsample grids: {artifact.path / 'samples'}")
    return 0


def cmd_translate_apply(args: argparse.Namespace) -> int:
    from symda.translate import translate_root

    cfg = load_config(args.config, args.overrides)
    read_checkpoint(args.checkpoint, "translator checkpoint")  # before any work: missing, unreadable, refused
    split = args.split if args.kind == "cityscapes" else None
    out = translate_root(args.checkpoint, args.kind, args.data, split, {"source": 0, "target": 1}[args.to], args.out,
                         list_file=args.list, batch_size=cfg.translate.apply_batch_size, progress=_progress())  # fmt: skip
    print(f"translated {args.kind} {args.data} to the {args.to} style: {out}")
    return 0


def cmd_translate_change(args: argparse.Namespace) -> int:
    from symda.translate.apply import IDENTITY_CHANGE, dataset_change, list_root

    split = args.split if args.kind == "cityscapes" else None
    change, n = dataset_change(list_root(args.kind, args.data, split, args.list), args.data, args.translated)
    verdict = "the translator learned the identity" if change < IDENTITY_CHANGE else "translated"
    print(f"{args.translated}: mean |X' - X| {change:.3f} grey levels over {n} images of {args.data}: {verdict} "
          f"(identity below {IDENTITY_CHANGE})")  # fmt: skip
    return 0


def _run_networks(run_dir: Path, cfg: ExperimentConfig) -> tuple[Path, Path | None, Path | None]:
    """(F_T checkpoint, F_S checkpoint or None, V' root or None) of a finished `symda run` folder: the
    last round's networks, found in the artifact store through the keys in its metrics.json."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise DatasetError(f"{metrics_file}: not found (is {run_dir} a finished `symda run` folder?)")
    keys = json.loads(metrics_file.read_text()).get("artifacts", {})
    networks = [n for n in map(NetworkId.parse, keys) if n is not None and n.path == "T"]
    if not networks:
        raise DatasetError(f"{metrics_file}: no F_T_r<round> under 'artifacts' (a `symda train` folder?)")
    from symda.artifacts import ArtifactStore
    from symda.pipeline import network_file

    store = ArtifactStore(cfg.artifacts_dir)
    last = max(n.round for n in networks)
    f_t, f_s = NetworkId("T", last), NetworkId("S", last)
    f_t_file = network_file(store.network_path(f_t, keys[f_t.tag]))
    f_s_file = network_file(store.network_path(f_s, keys[f_s.tag])) if f_s.tag in keys else None
    val_t = (
        store.path("translated_val", keys["translated_val"]) / "data" if "translated_val" in keys else None
    )
    return f_t_file, f_s_file, val_t


def cmd_evaluate(args: argparse.Namespace) -> int:
    from symda.data import ensure_synthcity
    from symda.io import write_json
    from symda.pipeline import evaluate_method
    from symda.preflight import check_writable

    if args.run is not None:
        if not args.run.is_dir() or not (args.run / "config.yaml").is_file():
            raise DatasetError(f"--run {args.run}: not a symda run folder (no config.yaml); give the --out "
                               "folder of a finished `symda run`")  # fmt: skip
        cfg = load_config(args.config or args.run / "config.yaml", args.overrides, legacy=args.config is None)
        checkpoint, partner, partner_data = _run_networks(args.run, cfg)
        partner = args.partner or partner
        partner_data = args.partner_data or partner_data
    elif args.checkpoint is not None:
        # The network's own config: --config, else the config.yaml of the run folder it was saved in.
        # Defaults would silently score it on another dataset, or build another architecture.
        beside = args.checkpoint.parent / "config.yaml"
        if args.config is None and not beside.is_file():
            raise ConfigError(f"--checkpoint {args.checkpoint}: no --config given and no config.yaml beside it; "
                              "pass --config with the config the network was trained with")  # fmt: skip
        cfg = load_config(args.config or beside, args.overrides, legacy=args.config is None)
        checkpoint, partner, partner_data = args.checkpoint, args.partner, args.partner_data
    else:
        raise DatasetError(
            "symda evaluate: give --checkpoint F_T.pt (and --partner, --partner-data) or --run DIR"
        )
    for path, what in ((checkpoint, "segmenter checkpoint"), (partner, "partner checkpoint")):
        if path is not None:  # before any data is made: a missing, unreadable or refused file
            read_checkpoint(path, what)
    if partner is not None:
        if partner_data is None:
            raise DatasetError("--partner needs --partner-data: V' = G(V, source) of the split, Cityscapes "
                               "layout (symda translate apply --kind cityscapes --to source --split ...)")  # fmt: skip
        if args.run is not None and args.partner_data is None and args.split != "val":
            raise DatasetError(f"{args.run}: the run translated the val split only; for --split {args.split} "
                               "pass --partner-data (symda translate apply --to source)")  # fmt: skip
        if not Path(partner_data).is_dir():
            raise DatasetError(f"{partner_data}: partner data (V') not found")
    cfg.data.val_split = args.split
    default_out = (args.run if args.run is not None else checkpoint.parent) / f"eval_{args.split}"
    out = Path(args.out) if args.out else default_out
    check_writable(out, "--out")  # before the evaluation, not after it
    if args.save_predictions:
        check_writable(args.save_predictions, "--save-predictions")
    ensure_synthcity(cfg.data, cfg.synth, progress=_progress())
    metrics = evaluate_method(
        cfg, checkpoint, partner, partner_data, args.save_predictions, args.color, _progress()
    )
    width = max(map(len, metrics["iou"]))
    print(f"{'class':>{width}s} {'F_T':>6s}" + (f" {'fused':>6s}" if partner else ""))
    for name, iou in metrics["iou"].items():
        print(f"{name:>{width}s} {iou:6.2f}" + (f" {metrics['iou_fused'][name]:6.2f}" if partner else ""))
    print(
        f"{'mIoU':>{width}s} {metrics['miou']:6.2f}" + (f" {metrics['miou_fused']:6.2f}" if partner else "")
    )
    from symda.select import VALIDATORS

    shown = ", ".join(f"{name} {metrics[name]:.4f}" for name in VALIDATORS if metrics[name] == metrics[name])
    print(f"validators (no target label read): {shown}")
    inputs = {"checkpoint": str(checkpoint), "partner": str(partner) if partner else None,
              "partner_data": str(partner_data) if partner else None, "split": args.split,
              "fusion_weight": cfg.eval.fusion_weight if partner else None}  # fmt: skip
    print(f"metrics: {write_json(out / 'metrics.json', {**inputs, **metrics})}")
    if args.save_predictions:
        kind = "fused" if partner else "F_T"
        print(f"predictions ({kind}, Cityscapes labelIds): {args.save_predictions}")
    return 0


def cmd_store_gc(args: argparse.Namespace) -> int:
    from symda.artifacts import ArtifactStore

    cfg = load_config(args.config, args.overrides)
    store = ArtifactStore(cfg.artifacts_dir)
    builds = store.unfinished()
    for b in builds:
        state = "building now (kept)" if b.busy else "interrupted"
        print(f"{b.bytes / 2**20:8.1f} MB  {b.stage}/{b.key}  {state}  {b.path}")
    idle = [b for b in builds if not b.busy]
    total = sum(b.bytes for b in idle) / 2**20
    if not args.remove:
        hint = (
            f"; remove them with: symda store gc --remove --set artifacts_dir={cfg.artifacts_dir}"
            if idle
            else ""
        )
        print(f"{len(idle)} interrupted builds in {cfg.artifacts_dir}, {total:.1f} MB{hint}")
        return 0
    removed = store.remove_unfinished()
    print(f"removed {len(removed)} interrupted builds ({sum(b.bytes for b in removed) / 2**20:.1f} MB); "
          "finished artifacts are untouched")  # fmt: skip
    return 0


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from symda.legacy_keys import migrate_store

    cfg = load_config(args.config, args.overrides)
    done = migrate_store(Path(cfg.artifacts_dir), dry_run=args.dry_run)
    verb = "would link" if args.dry_run else "linked"
    for (stage, old), new in done.linked.items():
        print(f"{verb} {stage}/{old} -> {stage}/{new}")
    for (stage, old), why in done.skipped.items():
        print(f"skipped {stage}/{old}: {why}", file=sys.stderr)
    print(f"{cfg.artifacts_dir}: {len(done.linked)} artifacts of older key schemas {verb} under today's keys "
          f"(hard links: no copy, the old ones stay), {len(done.present)} already there, {len(done.skipped)} skipped")  # fmt: skip
    return 1 if done.skipped else 0


def cmd_checkpoint_upgrade(args: argparse.Namespace) -> int:
    from symda.checkpoints import upgrade_checkpoint

    out = args.out or args.file.with_name(f"{args.file.stem}.data{args.file.suffix or '.pt'}")
    print(f"{args.file}: read as data: the Python objects its pickle names are left out, none of their "
          "code runs (trust is not needed)", file=sys.stderr)  # fmt: skip
    dropped = upgrade_checkpoint(args.file, out)
    for what in dropped:
        print(f"left out {what} (not tensors or plain values)", file=sys.stderr)
    print(f"{out}: the same checkpoint as data ({len(dropped)} objects left out); symda reads it, the "
          f"original {args.file} is untouched")  # fmt: skip
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from symda.pipeline.diagnose import diagnose_run

    path = diagnose_run(args.run, args.out, progress=_progress())
    print(
        f"pseudo-label diagnostics: {path}\nreport: python analysis/pseudo_diagnostics.py {args.run} --out REPORT.md"
    )
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help with each flag's default (where it has one its help does not already name) and the
    epilog's example kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


EXAMPLES = {
    "synth": "symda synth --out data/synthcity --seed 1 --size 128x256 --n-source 300",
    "check-data": "symda check-data --config configs/gta5/full.yaml --roles source val",
    "train": "symda train --config configs/synthcity/source_only.yaml --set train.steps=200",
    "run": "symda run --config configs/synthcity/quick.yaml --set seed=1",
    "dry-run": "symda dry-run --config configs/gta5/full.yaml --work /tmp/dry --scale 0.25",
    "translate train": "symda translate train --config configs/synthcity/translate.yaml",
    "translate apply": "symda translate apply --checkpoint T/translator.pt --data data/synthcity/gta5 --kind gta5 "
    "--to target --out data/gta5_translated",
    "translate change": "symda translate change --data data/synthcity/gta5 --kind gta5 "
    "--translated data/gta5_translated",
    "store gc": "symda store gc --set artifacts_dir=artifacts --remove",
    "store migrate": "symda store migrate --set artifacts_dir=artifacts --dry-run",
    "diagnose": "symda diagnose --run runs/v2/ladder/full-s0",
    "checkpoint upgrade": "symda checkpoint upgrade released/model.pth --out released/model.data.pt",
    "evaluate": "symda evaluate --run runs/quick --save-predictions runs/quick/pred --color",
    "config show": "symda config show --config configs/synthcity/quick.yaml --set train.lr=3e-4",
    "config keys": "symda config keys translate",
}


def _command(sub, command: str, help: str) -> argparse.ArgumentParser:
    """The subcommand `command` ("run", "translate apply") whose --help shows defaults and its example."""
    return sub.add_parser(command.split()[-1], help=help, description=help, formatter_class=_HelpFormatter,
                          epilog=f"example:\n  {EXAMPLES[command]}")  # fmt: skip


def cmd_config_show(args: argparse.Namespace) -> int:
    from symda.config import show_config

    print(show_config(load_config(args.config, args.overrides)), end="")
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    from symda.config import describe_keys

    keys = [k for k in describe_keys() if not args.prefix or k.key.startswith(args.prefix)]
    if not keys:
        raise ConfigError(f"no config key starts with {args.prefix!r} (sections: {', '.join(_sections())})")
    width = max(len(k.key) for k in keys)
    for k in keys:
        print(f"{k.key:<{width}}  {k.type:<16} {json.dumps(k.default, default=str):<24} {k.help}")
    return 0


def _sections() -> list[str]:
    defaults = ExperimentConfig()
    return [
        f.name for f in dataclasses.fields(defaults) if dataclasses.is_dataclass(getattr(defaults, f.name))
    ]


def build_parser() -> argparse.ArgumentParser:
    from symda import __version__

    parser = argparse.ArgumentParser(prog="symda", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"symda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "synth", "generate the SynthCity benchmark (GTA5 + Cityscapes layouts)")
    _add_config_args(p)
    p.add_argument("--out", type=Path, help="output folder (default: synth.root)")
    p.add_argument("--seed", type=int, help="the benchmark's seed (default: synth.seed)")
    p.add_argument(
        "--size", type=_parse_size, help="HxW of the images, e.g. 128x256 (default: synth.height x width)"
    )
    p.add_argument("--n-source", type=_count, help="source image/label pairs (default: synth.n_source)")
    p.add_argument("--n-target", type=_count, help="target train images (default: synth.n_target)")
    p.add_argument("--n-val", type=_count, help="target val images with labels (default: synth.n_val)")
    p.set_defaults(func=cmd_synth)

    p = _command(sub, "check-data", "check the configured datasets and report every problem")
    _add_config_args(p)
    p.add_argument("--roles", nargs="+", default=["source", "target_labelled", "val"],
                   choices=["source", "target", "target_labelled", "val"],
                   help="which datasets: labelled source, target train (images only / with labels), target val")  # fmt: skip
    p.set_defaults(func=cmd_check_data)

    p = _command(sub, "train", "supervised training: source-only, or the oracle with data.source=cityscapes")
    _add_config_args(p)
    p.add_argument("--out", type=Path, help="run folder (default: out_dir/name)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=cmd_train)

    p = _command(
        sub, "run", "the whole method: translate, adapt F_T/F_S, pseudo labels, self-train, evaluate"
    )
    _add_config_args(p)
    p.add_argument("--out", type=Path, help="run folder (default: out_dir/name)")
    p.set_defaults(func=cmd_run)

    p = _command(sub, "dry-run", "run a real-data config on generated data in the real layouts, every stage "
                 "a few steps: check it before copying the datasets")  # fmt: skip
    _add_config_args(p)
    p.add_argument(
        "--work", type=Path, required=True, help="folder for the generated data, the store and the run"
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="size factor of every image and input (1: the real sizes)"
    )
    p.add_argument("--images", type=_count, default=4, help="images a domain (val: half)")
    p.add_argument("--steps", type=_count, default=2, help="steps of every training stage")
    p.set_defaults(func=cmd_dry_run)

    p = sub.add_parser("translate", help="stage 1: train the StarGAN translator, or translate a dataset")
    tsub = p.add_subparsers(dest="translate_command", required=True)
    t = _command(
        tsub, "translate train", "train the translator (stored as an artifact; reused when it exists)"
    )
    _add_config_args(t)
    t.add_argument(
        "--out", type=Path, help="run folder for config.yaml and log.jsonl (default: out_dir/name)"
    )
    t.set_defaults(func=cmd_translate_train)
    t = _command(tsub, "translate apply", "translate a whole dataset at full resolution into the same layout")
    _add_config_args(t)
    t.add_argument("--checkpoint", type=Path, required=True, help="translator.pt")
    t.add_argument("--data", type=Path, required=True, help="dataset root")
    t.add_argument(
        "--kind", choices=["gta5", "cityscapes", "synthia"], required=True, help="the dataset's layout"
    )
    t.add_argument("--split", default="train", choices=["train", "val", "test"], help="Cityscapes split")
    t.add_argument("--list", type=Path, help="optional split-list file")
    t.add_argument("--to", choices=["target", "source"], required=True, help="style to translate into")
    t.add_argument("--out", type=Path, required=True, help="the translated dataset's root (same layout)")
    t.set_defaults(func=cmd_translate_apply)
    t = _command(tsub, "translate change", "how much a translated dataset differs from its original: "
                 "mean |X' - X| in grey levels (about 0: the translator learned the identity)")  # fmt: skip
    t.add_argument("--data", type=Path, required=True, help="the original dataset root")
    t.add_argument(
        "--kind", choices=["gta5", "cityscapes", "synthia"], required=True, help="the dataset's layout"
    )
    t.add_argument("--split", default="train", choices=["train", "val", "test"], help="Cityscapes split")
    t.add_argument("--list", type=Path, help="optional split-list file")
    t.add_argument("--translated", type=Path, required=True, help="its translation's root (same layout)")
    t.set_defaults(func=cmd_translate_change)

    p = sub.add_parser("store", help="the artifact store: interrupted builds, older key schemas")
    ssub = p.add_subparsers(dest="store_command", required=True)
    g = _command(ssub, "store gc", "list the interrupted builds (.building folders) and their size")
    _add_config_args(g)
    g.add_argument(
        "--remove", action="store_true", help="delete them (a later build of the same key starts over)"
    )
    g.set_defaults(func=cmd_store_gc)
    m = _command(ssub, "store migrate", "link the artifacts of an older key schema under today's keys, so that "
                 "runs reuse them (symda.legacy_keys)")  # fmt: skip
    _add_config_args(m)
    m.add_argument("--dry-run", action="store_true", help="list what would be linked, link nothing")
    m.set_defaults(func=cmd_store_migrate)

    p = sub.add_parser("checkpoint", help="checkpoints from elsewhere: rewrite one as data")
    csub = p.add_subparsers(dest="checkpoint_command", required=True)
    u = _command(csub, "checkpoint upgrade", "rewrite a checkpoint whose pickle holds Python objects (which "
                 "symda refuses to unpickle) as tensors and plain values; none of its code runs")  # fmt: skip
    u.add_argument(
        "file", type=Path, help="the checkpoint (read as data: its Python objects are left out, never run)"
    )
    u.add_argument("--out", type=Path, help="the new file (default FILE's name + .data; never over a file)")
    u.set_defaults(func=cmd_checkpoint_upgrade)

    p = _command(sub, "diagnose", "pseudo-label diagnostics of a finished run's round-0 networks against the "
                 "target train split's true labels (SynthCity has them)")  # fmt: skip
    p.add_argument("--run", type=Path, required=True, metavar="DIR", help="a finished `symda run` folder")
    p.add_argument("--out", type=Path, help="the results file (default DIR/pseudo_diagnostics.json)")
    p.set_defaults(func=cmd_diagnose)

    p = _command(sub, "evaluate", "score F_T, and fused F_T + F_S, on the target val split")
    _add_config_args(p)
    p.add_argument("--checkpoint", type=Path, help="F_T (or any segmenter) checkpoint.pt")
    p.add_argument(
        "--partner",
        type=Path,
        help="F_S checkpoint.pt: also score fused inference and the agreement validators",
    )
    p.add_argument("--partner-data", type=Path, metavar="DIR",
                   help="V' = G(V, source) in Cityscapes layout, F_S's input (symda translate apply --to source)")  # fmt: skip
    p.add_argument("--run", type=Path, metavar="DIR",
                   help="a finished `symda run` folder: its config and its last round's F_T, F_S and V'")  # fmt: skip
    p.add_argument("--split", default="val", choices=["train", "val"],
                   help="the Cityscapes split to score (test has no public labels)")  # fmt: skip
    p.add_argument("--out", type=Path, help="folder for metrics.json (default: next to the checkpoint)")
    p.add_argument("--save-predictions", type=Path, metavar="DIR", help="write Cityscapes labelId PNGs here")
    p.add_argument("--color", action="store_true", help="also write colourised predictions")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("config", help="print a resolved config, or list every config key")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = _command(
        csub,
        "config show",
        "the resolved config as YAML; values that differ from the defaults say the default",
    )
    _add_config_args(c)
    c.set_defaults(func=cmd_config_show)
    c = _command(csub, "config keys", "every config key with its type, default and a one-line help")
    c.add_argument(
        "prefix", nargs="?", default="", help="only keys starting with this, e.g. train or model.bn"
    )
    c.set_defaults(func=cmd_config_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        ConfigError,
        DatasetError,
        CheckpointError,
        FileNotFoundError,
        FileExistsError,
        FloatingPointError,
    ) as err:
        # FloatingPointError: a loss turned non-finite; the message names the stage, step and loss.
        print(f"symda {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        # A full disk or a read-only folder mid-run: what was being written is named; the store never
        # registers a half-written artifact (its work folder stays hidden, and a rerun resumes it).
        print(f"symda {args.command}: error: cannot write {err.filename or 'a file'}: {err.strerror} "
              "(free some space, or point --out / artifacts_dir elsewhere, then rerun)", file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
