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
    """One row per run folder that holds metrics.json: name, seeds, val mIoU."""
    rows = []
    for d in run_dirs:
        metrics_file, config_file = d / "metrics.json", d / "config.yaml"
        if not metrics_file.is_file() or not config_file.is_file():
            print(f"skipping {d}: no metrics.json / config.yaml")
            continue
        cfg = yaml.safe_load(config_file.read_text())
        metrics = json.loads(metrics_file.read_text())
        rows.append({"name": cfg["name"], "seed": cfg["seed"], "synth.seed": cfg["synth"]["seed"],
                     "miou": metrics.get("val_miou"), "run": str(d)})  # fmt: skip
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """name | mIoU mean | std | seeds | per-seed values, in first-seen order of names."""
    grouped = runs.groupby("name", sort=False)["miou"]
    return pd.DataFrame({
        "mIoU": grouped.mean().round(1),
        "std": grouped.std(ddof=0).round(1),
        "seeds": grouped.count(),
        "per seed": grouped.apply(lambda s: ", ".join(f"{v:.1f}" for v in s)),
    })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runs = load_runs(args.runs)
    table = summary_table(runs)
    text = "| experiment | mIoU (mean) | std | seeds | per seed |\n| --- | --- | --- | --- | --- |\n" + "\n".join(
        f"| {name} | {r['mIoU']:.1f} | {r['std']:.1f} | {r['seeds']} | {r['per seed']} |" for name, r in table.iterrows()
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
