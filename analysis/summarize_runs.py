"""Mean +- std of target-val mIoU over seeds, one row per experiment name, from run folders.

Reads each run's config.yaml and metrics.json (no torch). Prints a Markdown table.

    python analysis/summarize_runs.py runs/source_only-s0 runs/source_only-s1 ... [--out table.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml


def load_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run folder: name, seeds, val mIoU (single and, for `symda run`, fused).

    Reads result.json (`symda run`) or metrics.json + config.yaml (`symda train`).
    """
    rows = []
    for d in run_dirs:
        if (d / "result.json").is_file():
            r = json.loads((d / "result.json").read_text())
            rows.append({"name": r["name"], "seed": r["seed"], "synth.seed": r["synth.seed"], "miou": r["miou"],
                         "miou_fused": r["miou_fused"], "run": str(d)})  # fmt: skip
        elif (d / "metrics.json").is_file() and (d / "config.yaml").is_file():
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            metrics = json.loads((d / "metrics.json").read_text())
            rows.append({"name": cfg["name"], "seed": cfg["seed"], "synth.seed": cfg["synth"]["seed"],
                         "miou": metrics.get("val_miou"), "miou_fused": None, "run": str(d)})  # fmt: skip
        else:
            print(f"skipping {d}: no result.json, nor metrics.json + config.yaml")
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """name | mIoU mean, std, per seed | fused mean, std | seeds, in first-seen order of names."""
    g = runs.groupby("name", sort=False)
    return pd.DataFrame({
        "mIoU": g["miou"].mean(),
        "std": g["miou"].std(ddof=0),
        "fused": g["miou_fused"].mean(),
        "fused std": g["miou_fused"].std(ddof=0),
        "seeds": g["miou"].count(),
        "per seed": g["miou"].apply(lambda s: ", ".join(f"{v:.1f}" for v in s)),
    })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runs = load_runs(args.runs)
    table = summary_table(runs)
    lines = ["| experiment | mIoU (mean) | std | fused mIoU | fused std | seeds | per seed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in table.iterrows():
        fused = "" if pd.isna(r["fused"]) else f"{r['fused']:.1f}"
        fused_std = "" if pd.isna(r["fused"]) else f"{r['fused std']:.1f}"
        lines.append(
            f"| {name} | {r['mIoU']:.1f} | {r['std']:.1f} | {fused} | {fused_std} | {r['seeds']} | {r['per seed']} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
