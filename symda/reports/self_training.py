"""The self-training study's tables, from its run folders (<row>-s<seed>, symda.sweeps.self_training).

    python analysis/self_training_table.py runs/v2/self_training/screen --out docs/results/v2/self_training_screen.md

Recipe table: per row and seed the target val mIoU and its gain over the same seed's start row
(cycada_like: the adapted network every row self-trains from), with the evaluation noise of the
difference (sqrt(se_row^2 + se_start^2), each a bootstrap std over val images), the mean gain over
seeds, and round 1's pseudo-label coverage and precision (precision reads the target labels:
diagnostics only); with two paths also the fused score. Per-class table: the IoU gain over the start
of the rows that read target labels (headroom_*) beside the label recipes (PER_CLASS_ROWS). A bar chart of the mean gains goes next to
the table (its stem + .png).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from symda.reports.ablation_table import markdown
from symda.results import CLASS_NAMES, load_results

START = "cycada_like"  # the row every other row is compared with, seed by seed
# The rows whose per-class gains the second table shows: the label recipes beside the headroom rows.
PER_CLASS_ROWS = ("bdl_like", "mean_teacher", "online", "headroom_correct", "headroom_kept", "headroom_all")


def study_runs(folder: Path) -> pd.DataFrame:
    """One row per finished cell: row, seed, miou, miou_se, iou.<class>, round-1 pseudo stats."""
    frame = load_results(folder)
    frame = frame[frame["finished"].astype(bool) & frame["miou"].notna()].copy()
    parts = frame["run_id"].str.rsplit("-s", n=1)
    frame["row"], frame["seed"] = parts.str[0], parts.str[1].astype(int)
    return frame


# The study file (read by symda.sweeps.self_training); its rows' order is the tables' order.
STUDY_FILE = Path(__file__).resolve().parents[2] / "configs" / "study" / "self_training.yaml"


def study_rows(path: Path = STUDY_FILE) -> list[str]:
    """The study file's row names in its order ([] when there is no such file)."""
    import yaml

    try:
        return list((yaml.safe_load(path.read_text()) or {}).get("rows", {}))
    except (OSError, yaml.YAMLError, AttributeError):
        return []


def gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (row, seed): miou, gain over the seed's START row and the noise of that gain."""
    start = runs[runs["row"] == START].set_index("seed")
    out = []
    for _, r in runs.iterrows():
        base = start.loc[r["seed"]] if r["seed"] in start.index else None
        gain = r["miou"] - base["miou"] if base is not None else math.nan
        noise = math.hypot(r["miou_se"], base["miou_se"]) if base is not None else math.nan
        fused_gain = r["miou_fused"] - base["miou_fused"] if base is not None else math.nan
        out.append({"row": r["row"], "seed": r["seed"], "miou": r["miou"], "gain": gain, "noise": noise,
                    "miou_fused": r["miou_fused"], "fused_gain": fused_gain,
                    "coverage": r.get("pseudo_r1.coverage", math.nan),
                    "precision": r.get("pseudo_r1.diag_pseudo_accuracy", math.nan)})  # fmt: skip
    return pd.DataFrame(out)


def recipe_table(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Rows in study order: per seed 'miou (gain ± noise)', the mean gain, coverage and precision;
    with two paths (a fused score that differs from F_T's) also the fused mIoU's mean and mean gain."""
    seeds = sorted(table["seed"].unique())
    pair = bool((table["miou_fused"] - table["miou"]).abs().max() > 1e-9)
    lines = {}
    for row in order:
        part = table[table["row"] == row].set_index("seed")
        if part.empty:
            continue
        line = {}
        for s in seeds:
            if s not in part.index:
                line[f"seed {s}"] = ""
                continue
            p = part.loc[s]
            line[f"seed {s}"] = f"{p['miou']:.2f}" + ("" if row == START or math.isnan(p["gain"])
                                                       else f" ({p['gain']:+.2f} ± {p['noise']:.2f})")  # fmt: skip
        line["mean gain"] = "" if row == START else f"{part['gain'].mean():+.2f}"
        if pair:
            line["fused"] = f"{part['miou_fused'].mean():.2f}"
            line["fused gain"] = "" if row == START else f"{part['fused_gain'].mean():+.2f}"
        line["coverage"] = _pct(part["coverage"].mean())
        line["precision"] = _pct(part["precision"].mean())
        lines[row] = line
    return pd.DataFrame.from_dict(lines, orient="index")


def headroom_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per class (and mIoU) the mean IoU gain over the start of the pseudo-label and headroom rows."""
    start = runs[runs["row"] == START].set_index("seed")
    cols = {}
    for row in PER_CLASS_ROWS:
        part = runs[runs["row"] == row].set_index("seed")
        seeds = [s for s in part.index if s in start.index]
        if not seeds:
            continue
        diff = {c: (part.loc[seeds, f"iou.{c}"] - start.loc[seeds, f"iou.{c}"]).mean() for c in CLASS_NAMES}
        diff["mIoU"] = (part.loc[seeds, "miou"] - start.loc[seeds, "miou"]).mean()
        cols[row] = diff
    table = pd.DataFrame(cols)
    if not table.empty:
        table.insert(0, START, [start[f"iou.{c}"].mean() for c in CLASS_NAMES] + [start["miou"].mean()])
    return table


def _pct(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def bar_chart(table: pd.DataFrame, order: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in order if r != START and r in set(table["row"])]
    means = [table[table["row"] == r]["gain"].mean() for r in rows]
    noise = [table[table["row"] == r]["noise"].mean() for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows)), 3.8))
    colors = ["#999999" if r.startswith("headroom") else "#4c72b0" for r in rows]
    ax.bar(range(len(rows)), means, yerr=noise, capsize=4, color=colors)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), rows, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"mIoU gain over {START}")
    ax.set_title("Self-training recipes (grey: reads target labels); bars: mean over seeds, ± eval noise")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="the study's preset folder (<row>-s<seed> run folders)")
    p.add_argument(
        "--out", type=Path, help="write the tables here (and the chart next to it) instead of stdout"
    )
    p.add_argument(
        "--rows", nargs="+", help=f"the rows to show (default every finished row; {START} is kept)"
    )
    args = p.parse_args(argv)
    runs = study_runs(args.folder)
    if args.rows:
        runs = runs[runs["row"].isin([START, *args.rows])]
    if runs.empty:
        print(f"error: no finished cell under {args.folder}", file=sys.stderr)
        return 2
    order = [r for r in study_rows() if r in set(runs["row"])]
    order += sorted(set(runs["row"]) - set(order))
    table = gains(runs)
    text = [
        f"Target val mIoU (%) per seed; in brackets the gain over {START} of the same seed ± the evaluation "
        "noise of that difference; coverage and precision (reads the target labels) of round 1's labels. "
        f"Generated by `python analysis/self_training_table.py {args.folder}"
        + (f" --rows {' '.join(args.rows)}`." if args.rows else "`."),
        markdown(recipe_table(table, order), "row"),
    ]
    headroom = headroom_table(runs)
    if not headroom.empty:
        text += [f"Per-class IoU (%) of {START}, and each row's gain over it (mean over seeds):",
                 markdown(headroom.map(lambda v: f"{v:.1f}"), "class")]  # fmt: skip
    if args.out is None:
        print("\n\n".join(text))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chart = bar_chart(table, order, args.out.with_suffix(".png"))
    args.out.write_text("\n\n".join([*text, f"![self-training gains]({chart.name})"]) + "\n")
    print(f"wrote {args.out} and {chart}")
    return 0
