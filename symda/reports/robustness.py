"""Is symmetric adaptation more robust than one path? The spread of the final mIoU over a grid of the
adversarial weight x the pseudo-label threshold, single path against the symmetric pair.

    python analysis/robustness_table.py runs/v2/self_training/screen runs/v2/self_training/screen_pair \
        --out docs/results/v2/robustness.md

The grid is the self-training study's `online` row and its `robust_*` rows (configs/study/
self_training.yaml), run under the screen preset (one path) and the screen_pair preset (F_S adapted
beside F_T, the method's M_conf). Each cell is read from its run's config (the adversarial weight and
the per-class quantile), so the table does not depend on the rows' names. Cells are paired: a (lambda,
quantile, seed) enters only when both presets finished it. Robustness is a spread, not a mean: per
column the standard deviation, the range and the worst cell, beside the evaluation's own noise (the
median bootstrap std of a cell's mIoU); a spread within that noise says nothing either way.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from symda.reports.ablation_table import markdown
from symda.reports.self_training import study_runs

GRID_KEYS = {"adapt.adversarial.lambda_main": "lambda_adv", "pseudo.quantile": "quantile"}
CENTRE_ROW = "online"  # the study's default cell: lambda 0.001, per-class median


def is_grid_row(row: str) -> bool:
    return row == CENTRE_ROW or row.startswith("robust_")


def grid_runs(folder: Path) -> pd.DataFrame:
    """The finished grid cells of one preset's folder: lambda_adv, quantile, seed, miou, miou_fused,
    miou_se (one row per cell)."""
    runs = study_runs(folder)
    runs = runs[runs["row"].map(is_grid_row)]
    if runs.empty:
        return pd.DataFrame(columns=[*GRID_KEYS.values(), "seed", "miou", "miou_fused", "miou_se"])
    missing = [k for k in GRID_KEYS if k not in runs.columns]
    if missing:
        raise ValueError(f"{folder}: the runs' configs lack {', '.join(missing)}")
    out = runs.rename(columns=GRID_KEYS)[[*GRID_KEYS.values(), "seed", "miou", "miou_fused", "miou_se"]]
    return out.astype({"lambda_adv": float, "quantile": float, "seed": int})


def paired_grid(single: pd.DataFrame, pair: pd.DataFrame) -> pd.DataFrame:
    """Cells both presets finished, indexed (lambda_adv, quantile, seed): single F_T, symmetric F_T,
    symmetric fused mIoU and the larger of the two cells' bootstrap std."""
    keys = [*GRID_KEYS.values(), "seed"]
    both = single.merge(pair, on=keys, suffixes=("_single", "_pair"))
    table = pd.DataFrame({
        "single F_T": both["miou_single"],
        "symmetric F_T": both["miou_pair"],
        "symmetric fused": both["miou_fused_pair"],
        "noise": both[["miou_se_single", "miou_se_pair"]].max(axis=1),
    })  # fmt: skip
    table.index = pd.MultiIndex.from_frame(both[keys])
    return table.sort_index()


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per column of `paired_grid`: cells, mean, std, range (max - min), worst cell, and the median
    evaluation noise of a cell."""
    cols = [c for c in table.columns if c != "noise"]
    noise = float(table["noise"].median()) if len(table) else math.nan
    rows = {}
    for c in cols:
        v = table[c]
        rows[c] = {"cells": len(v), "mean": v.mean(), "std": v.std(ddof=1) if len(v) > 1 else math.nan,
                   "range": v.max() - v.min(), "worst": v.min(), "eval noise": noise}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")


def two_decimals(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def cells_text(table: pd.DataFrame) -> pd.DataFrame:
    """`paired_grid` as text: the grid's values as given (%g), mIoU and noise with 2 decimals."""
    flat = table.reset_index()
    text = flat.map(two_decimals)
    for key in GRID_KEYS.values():
        text[key] = flat[key].map(lambda v: f"{v:g}")
    return text.set_index("lambda_adv")


def per_seed_spread(table: pd.DataFrame) -> pd.DataFrame:
    """The std over the grid of each column, seed by seed (the grid's cells of one SynthCity)."""
    cols = [c for c in table.columns if c != "noise"]
    return table.groupby(level="seed")[cols].std(ddof=1)


def plot(table: pd.DataFrame, path: Path) -> Path:
    """mIoU of every cell, one line per column, cells on the x axis (lambda_adv / quantile / seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"λ {lam:g}\nq {q:g}\ns{s}" for lam, q, s in table.index]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(labels)), 3.8))
    for c, marker in zip([c for c in table.columns if c != "noise"], "osD", strict=False):
        ax.errorbar(range(len(labels)), table[c], yerr=table["noise"], marker=marker, capsize=3, label=c)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("target val mIoU (%)")
    ax.set_title("Single path against the symmetric pair over lambda_adv x quantile (± eval noise)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "single", type=Path, help="the study's one-path preset folder (runs/v2/self_training/screen)"
    )
    p.add_argument("pair", type=Path, help="its symmetric preset folder (runs/v2/self_training/screen_pair)")
    p.add_argument(
        "--out", type=Path, help="write the tables here (and the plot next to it) instead of stdout"
    )
    args = p.parse_args(argv)
    try:
        table = paired_grid(grid_runs(args.single), grid_runs(args.pair))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if table.empty:
        print(f"error: no grid cell finished under both {args.single} and {args.pair}", file=sys.stderr)
        return 2
    text = [
        "Target val mIoU (%) of each grid cell finished under both presets (one path; the symmetric pair's "
        "F_T and fused), and the larger of the two cells' evaluation noise. Generated by `python "
        f"analysis/robustness_table.py {args.single} {args.pair}`.",
        markdown(cells_text(table), "lambda_adv"),
        "The spread over those cells (std, range = max - min, worst cell) beside the median evaluation noise:",
        markdown(spread(table).map(two_decimals), "model"),
        "The std over the grid, seed by seed:",
        markdown(per_seed_spread(table).map(two_decimals), "seed"),
    ]
    if args.out is None:
        print("\n\n".join(text))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture = plot(table, args.out.with_suffix(".png"))
    args.out.write_text("\n\n".join([*text, f"![robustness grid]({picture.name})"]) + "\n")
    print(f"wrote {args.out} and {picture}")
    return 0
