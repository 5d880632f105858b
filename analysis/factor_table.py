"""SynthCity v2's factor table: what each domain-gap factor contributes to the benchmark's own rows.

    python analysis/factor_table.py runs/v2/factors runs/v2/baselines --out docs/results/v2/factors.md

Reads `symda train` runs of source_only, translated_source and oracle (any seeds) and groups them by
the gap they were generated with (synth.gap.*): one row per factor alone (the others at 0) and one
for all factors on. Columns: source-only, S' (translated source) and oracle mIoU (mean over seeds),
the gap (oracle - source-only), how much of it translation closes (left blank where the gap is
smaller than twice its noise, from the runs' bootstrap miou_se: a share of nothing says nothing), and
the row's gap as a share of the all-factors gap (the calibration asks every single factor to stay at or below 0.6). Writes the
markdown table and a bar plot beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from symda.config import SynthGapConfig  # noqa: E402
from symda.results import ablation_factors, load_results  # noqa: E402

FACTORS = tuple(
    f.name for f in dataclasses.fields(SynthGapConfig)
)  # the synth.gap keys (gap.GAP_FACTORS imports torch)
ROWS = {"source only": "source_only", "+ translation": "translated", "oracle": "oracle"}


def gap_name(row: pd.Series) -> str:
    """'all', one factor's name, 'none', or the strengths, from a run's synth.gap.* columns."""
    strengths = {f: float(row.get(f"synth.gap.{f}", 1.0)) for f in FACTORS}
    on = [f for f, s in strengths.items() if s > 0]
    if len(on) == len(FACTORS) and all(s == 1.0 for s in strengths.values()):
        return "all"
    if len(on) == 1 and strengths[on[0]] == 1.0:
        return on[0]
    return "none" if not on else ", ".join(f"{f}={s:g}" for f, s in strengths.items() if s)


def factor_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per gap (factors alone, then all): mean mIoU of each benchmark row over seeds, seeds,
    gap, translation's share of it and the gap's share of the all-factors gap."""
    runs = frame[(frame["finished"] == True) & frame["miou"].notna()].copy()  # noqa: E712
    runs = runs[runs.get("synth.preset", "v2").fillna("v2") == "v2"]
    runs["row"] = ablation_factors(runs)["setting"].map(ROWS)
    runs = runs[runs["row"].notna()]
    runs["gap"] = runs.apply(gap_name, axis=1)
    table = runs.pivot_table(index="gap", columns="row", values="miou", aggfunc="mean")
    table["seeds"] = runs.groupby("gap")["seed"].nunique()
    table["gap (oracle - source)"] = table["oracle"] - table["source_only"]
    table["translation closes"] = (table["translated"] - table["source_only"]) / table[
        "gap (oracle - source)"
    ]
    if "miou_se" in runs:
        # The noise of a seed-mean gap: the two rows' bootstrap errors, over sqrt(seeds); runs from
        # before the bootstrap was recorded count with the median error of those that have it.
        se = runs["miou_se"].fillna(runs["miou_se"].median())
        se2 = runs.assign(se2=se**2).pivot_table(index="gap", columns="row", values="se2")
        noise = ((se2.get("oracle", 0) + se2.get("source_only", 0)) / table["seeds"]) ** 0.5
        table.loc[table["gap (oracle - source)"] < 2 * noise, "translation closes"] = float("nan")
    full = table.loc["all", "gap (oracle - source)"] if "all" in table.index else float("nan")
    table["share of the full gap"] = table["gap (oracle - source)"] / full
    order = [g for g in (*FACTORS, "none", "all") if g in table.index] + [
        g for g in table.index if g not in (*FACTORS, "none", "all")
    ]
    return table.loc[order, ["source_only", "translated", "oracle", "seeds", "gap (oracle - source)",
                             "translation closes", "share of the full gap"]]  # fmt: skip


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| gap | source-only | S' (translated) | oracle | seeds | gap (oracle - source) | translation closes | "
             "share of the full gap |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in table.iterrows():
        cells = [f"{r[c]:.1f}" if pd.notna(r[c]) else "" for c in ("source_only", "translated", "oracle")]
        share = f"{r['translation closes']:.0%}" if pd.notna(r["translation closes"]) else ""
        full = f"{r['share of the full gap']:.2f}" if pd.notna(r["share of the full gap"]) else ""
        lines.append(
            f"| {name} | {' | '.join(cells)} | {int(r['seeds'])} | {r['gap (oracle - source)']:.1f} | {share} | {full} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, help="run folders or folders of them")
    p.add_argument("--out", type=Path, required=True, help="markdown table to write (and a .png beside it)")
    args = p.parse_args()
    table = factor_table(load_results(*args.paths))
    text = to_markdown(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    ax = table[["source_only", "translated", "oracle"]].plot.bar(figsize=(8, 3.5), rot=0)
    ax.set_ylabel("target val mIoU")
    ax.set_title("SynthCity v2: each gap factor alone, and all together")
    plt.tight_layout()
    plt.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"written: {args.out}, {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
