"""Mean +- std of target-val mIoU over seeds, one row per experiment *name* (config `name`).

A quick look at any set of runs; the ablation table of the method (rows named from config fields,
per-class table, gains, plot) is analysis/ablation_table.py. Reads through symda.results.load_results
(run folders, folders of runs, sweeps; no torch). Prints a Markdown table; std is the sample std.

    python analysis/summarize_runs.py runs/baselines runs/ladder [--out table.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from symda.results import load_results


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """name | mIoU mean, std, per seed | fused mean, std (runs with F_S only) | seeds, first-seen order."""
    done = runs[(runs["finished"] == True) & runs["miou"].notna()]  # noqa: E712 (True or NaN)
    symmetric = done["adapt.symmetric"] == True if "adapt.symmetric" in done else False  # noqa: E712
    done = done.assign(fused=done["miou_fused"].where(symmetric & (done["kind"] == "run")))
    g = done.groupby("name", sort=False)
    return pd.DataFrame({
        "mIoU": g["miou"].mean(),
        "std": g["miou"].std(ddof=1),
        "fused": g["fused"].mean(),
        "fused std": g["fused"].std(ddof=1),
        "seeds": g["miou"].count(),
        "per seed": g["miou"].apply(lambda s: ", ".join(f"{v:.1f}" for v in s)),
    })  # fmt: skip


def markdown(table: pd.DataFrame) -> str:
    def num(v: float) -> str:
        return "" if pd.isna(v) else f"{v:.1f}"

    lines = ["| experiment | mIoU (mean) | std | fused mIoU | fused std | seeds | per seed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in table.iterrows():
        lines.append(f"| {name} | {num(r['mIoU'])} | {num(r['std'])} | {num(r['fused'])} | {num(r['fused std'])} "
                     f"| {r['seeds']} | {r['per seed']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "runs", nargs="+", type=Path, help="run folders, folders of runs, sweeps, result.json files"
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    text = markdown(summary_table(load_results(*args.runs)))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
