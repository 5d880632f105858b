"""The ablation table of the method, from stored results: one row per ablation setting, mean +- std of
target-val mIoU over seeds, the number of seeds and the gain over the row above; then the per-class IoU
table in the field's class order (road ... bicycle) with an mIoU column.

    python analysis/ablation_table.py runs/baselines runs/ladder --out docs/results/ladder.md
    python analysis/ablation_table.py runs/ablation --format latex --out table.tex

Settings come from config fields (symda.results.ablation_factors), never from run names; runs of one
setting whose other result-relevant config keys differ (train.steps, say) become separate rows named
after the difference, so that no mean mixes two experiments. The full method gives two rows: "ours
single" (F_T) and "ours fusion" (F_T + F_S fused). std is the sample standard deviation (ddof 1).
With --out, a bar chart of the ladder with std error bars is written next to FILE (FILE's stem + .png).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from symda.results import (
    CONFIG_KEYS,
    IOU_COLUMNS,
    IOU_FUSED_COLUMNS,
    LADDER,
    OURS,
    OURS_FUSION,
    OURS_SINGLE,
    ablation_factors,
    load_results,
)

SHORT_NAMES = {"traffic light": "light", "traffic sign": "sign"}  # the field's table headers
# Keys that do not change a run's result (bookkeeping, paths, the seed a table averages over) ...
BOOKKEEPING_KEYS = {"name", "seed", "out_dir", "artifacts_dir", "synth.root", "synth.seed", "synth.auto_generate",
                    "data.source_root", "data.target_root", "data.source_list", "data.target_list",
                    "data.num_workers", "data.check", "train.threads", "train.eval_every", "eval.batch_size",
                    "translate.apply_batch_size"}  # fmt: skip
# ... and the keys the setting's name already says (symda.results.ablation_factors; a single path
# ignores pseudo.consistency). pseudo.threshold is not among them: "ours" does not name its policy.
FACTOR_KEYS = {"translate.enabled", "adapt.symmetric", "self_train.enabled", "pseudo.consistency"}
NOT_RESULT_KEYS = BOOKKEEPING_KEYS | FACTOR_KEYS
NOT_RESULT_SUFFIXES = ("log_every", "checkpoint_every", "sample_every")


def finished_runs(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs with a final mIoU, the others: unfinished, errored, stopped early)."""
    ok = (frame["finished"] == True) & frame["miou"].notna()  # noqa: E712 (object column: True or NaN)
    return frame[ok].reset_index(drop=True), frame[~ok].reset_index(drop=True)


def relevant_keys(row: pd.Series) -> list[str]:
    """The config keys that can change the result of a run with these factors: translate.* only
    with translation, adapt.* only when adapting, pseudo.* and self_train.* only with pseudo labels, eval.fusion_weight
    only with F_S; never bookkeeping (NOT_RESULT_KEYS)."""
    keys = []
    for key in CONFIG_KEYS:
        section = key.split(".")[0]
        if key in NOT_RESULT_KEYS or key.endswith(NOT_RESULT_SUFFIXES) or section == "scale":
            continue
        if section == "translate" and not row["translation"]:
            continue
        if section == "adapt" and row["kind"] == "train":
            continue
        if section in ("pseudo", "self_train") and not row["pseudo_labels"]:
            continue
        if key == "eval.fusion_weight" and not row["symmetric"]:
            continue
        keys.append(key)
    return [*keys, "scale.precision"]  # bf16 changes results; the other scale.* keys do not


def ladder_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (table row, finished run): `setting`, seed, `value` (the row's mIoU: fused for
    "ours fusion"), `fused` (the fused mIoU of runs with F_S, else NaN), iou.<class> (fused ones
    for "ours fusion"), the factor columns; sorted in ladder order."""
    runs, _ = finished_runs(frame)
    if runs.empty:
        return runs
    runs = pd.concat([runs, ablation_factors(runs)], axis=1)
    runs["setting"] = runs["setting"] + _split_suffixes(runs)
    runs["value"] = runs["miou"]
    runs["fused"] = runs["miou_fused"].where(runs["symmetric"])
    ours = runs["setting"].str.startswith(OURS + " (") | (runs["setting"] == OURS)
    fusion = runs[ours].copy()
    fusion["setting"] = fusion["setting"].str.replace(OURS, OURS_FUSION, n=1)
    fusion["value"] = fusion["miou_fused"]
    fusion["fused"] = math.nan
    for single, fused in zip(IOU_COLUMNS, IOU_FUSED_COLUMNS, strict=True):
        fusion[single] = fusion[fused] if fused in fusion.columns else math.nan
    runs.loc[ours, "setting"] = runs.loc[ours, "setting"].str.replace(OURS, OURS_SINGLE, n=1)
    # .copy() consolidates the frame into one block per dtype: the column writes above fragment it
    runs = pd.concat([runs, fusion], ignore_index=True).copy()
    order = {s: _ladder_rank(s) for s in runs["setting"].unique()}
    return runs.assign(_rank=runs["setting"].map(order)).sort_values(
        ["_rank", "setting", "seed"], kind="stable"
    )


def _ladder_rank(setting: str) -> tuple[int, str]:
    """Ladder position of a setting (its base name before any " (key=value)" suffix); other settings
    go after "ours fusion" and before the oracle."""
    base = setting.split(" (")[0]
    if base in LADDER:
        return LADDER.index(base) * 2, setting
    return LADDER.index(OURS_FUSION) * 2 + 1, setting  # between "ours fusion" and the oracle, last in LADDER


def _split_suffixes(runs: pd.DataFrame) -> pd.Series:
    """ " (key=value, ...)" for runs of a setting whose result-relevant config keys take several
    values within that setting (a key missing from an older record does not count); else ""."""
    suffix = pd.Series("", index=runs.index)
    for _, group in runs.groupby("setting", sort=False):
        keys = [k for k in relevant_keys(group.iloc[0]) if k in group.columns]
        varying = [k for k in keys if group[k].nunique(dropna=True) > 1]
        for i, row in group.iterrows():
            if varying:
                suffix[i] = " (" + ", ".join(f"{k}={_fmt_value(row[k])}" for k in varying) + ")"
    return suffix


def _fmt_value(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per table row (in ladder order): mean, std (ddof 1; NaN for one seed), n, the per-seed values,
    gain (mean minus the previous row's mean), fused mean and std, and the factors."""
    groups = runs.groupby("setting", sort=False)
    table = pd.DataFrame(
        {
            "mean": groups["value"].mean(),
            "std": groups["value"].std(ddof=1),
            "n": groups["value"].count(),
            "seeds": groups["seed"].apply(lambda s: tuple(int(x) for x in s)),
            "per_seed": groups["value"].apply(tuple),
            "fused_mean": groups["fused"].mean(),
            "fused_std": groups["fused"].std(ddof=1),
        }
    )
    table["gain"] = table["mean"].diff()
    factors = ["translation", "terms", "symmetric", "pseudo_labels", "consistency", "threshold"]
    return table.join(groups[factors].first())


def per_class_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean IoU of each class over seeds per table row, classes in the field's order, then mIoU."""
    columns = [c for c in IOU_COLUMNS if c in runs.columns]
    table = runs.groupby("setting", sort=False)[[*columns, "value"]].mean()
    table.columns = [SHORT_NAMES.get(c[4:], c[4:]) for c in columns] + ["mIoU"]
    return table


# ------------------------------------------------------------------------------------------- output


def _num(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1f}"


def _pm(mean: float, std: float, latex: bool = False) -> str:
    if pd.isna(mean):
        return ""
    sign = "$\\pm$" if latex else "±"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} {sign} {std:.1f}"


def _display(summary: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """The summary as the strings of the printed table."""
    mark = "$\\checkmark$" if latex else "✓"
    out = pd.DataFrame(index=summary.index)
    out["translation"] = [mark if v else "" for v in summary["translation"]]
    out["adaptation terms"] = [t.replace("+", ", ").replace("_", " ") for t in summary["terms"]]
    out["symmetric"] = [mark if v else "" for v in summary["symmetric"]]
    out["pseudo labels"] = [
        f"consistency {c}, {t}" if p else "" for p, c, t in zip(summary["pseudo_labels"], summary["consistency"],
                                                    summary["threshold"], strict=True)
    ]  # fmt: skip
    out["mIoU"] = [_pm(m, s, latex) for m, s in zip(summary["mean"], summary["std"], strict=True)]
    out["seeds"] = summary["n"].astype(str)
    out["gain"] = [f"{g:+.1f}" if not pd.isna(g) else "" for g in summary["gain"]]
    out["fused mIoU"] = [
        _pm(m, s, latex) for m, s in zip(summary["fused_mean"], summary["fused_std"], strict=True)
    ]
    out["per seed"] = [", ".join(f"{v:.1f}" for v in vals) for vals in summary["per_seed"]]
    return out


def markdown(table: pd.DataFrame, index_name: str = "setting") -> str:
    head = [index_name, *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += [
        "| " + " | ".join([str(i), *map(str, row)]) + " |"
        for i, row in zip(table.index, table.values, strict=True)
    ]
    return "\n".join(lines)


def latex(table: pd.DataFrame, index_name: str = "setting") -> str:
    def esc(text: object) -> str:
        return str(text).replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")

    lines = [f"\\begin{{tabular}}{{l{'r' * len(table.columns)}}}", "\\toprule",
             " & ".join(esc(c) for c in [index_name, *table.columns]) + " \\\\", "\\midrule"]  # fmt: skip
    lines += [
        " & ".join(esc(c) for c in [i, *row]) + " \\\\"
        for i, row in zip(table.index, table.values, strict=True)
    ]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"])


def bar_chart(summary: pd.DataFrame, path: Path) -> Path:
    """The ladder as bars (mean mIoU) with std error bars and the number of seeds on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(summary)), 4.0))
    x = range(len(summary))
    ax.bar(x, summary["mean"], yerr=summary["std"].fillna(0.0), capsize=4, color="#4c72b0")
    for i, (mean, n) in enumerate(zip(summary["mean"], summary["n"], strict=True)):
        ax.text(i, mean / 2, f"n={n}", ha="center", color="white", fontsize=8)
        ax.text(i + 0.08, mean + 0.5, f"{mean:.1f}", ha="left", va="bottom", fontsize=8)
    ax.set_xticks(list(x), summary.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("target val mIoU (%)")
    ax.set_title("Ablation ladder: mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render(summary: pd.DataFrame, per_class: pd.DataFrame, fmt: str, notes: list[str]) -> str:
    if fmt == "latex":
        return "\n\n".join([latex(_display(summary, latex=True)), latex(per_class.map(_num))])
    text = [markdown(_display(summary)), "Per-class IoU (%), mean over seeds:", markdown(per_class.map(_num))]
    return "\n\n".join([*notes, *text])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="run folders, sweep folders, result.json files")
    p.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    p.add_argument("--out", type=Path, help="write here (and the bar chart next to it) instead of stdout")
    args = p.parse_args(argv)
    frame = load_results(*args.results)
    runs = ladder_runs(frame)
    if runs.empty:
        print(f"error: no finished run under {', '.join(map(str, args.results))}", file=sys.stderr)
        return 2
    summary, per_class = summary_table(runs), per_class_table(runs)
    _, skipped = finished_runs(frame)
    notes = [
        f"Target val mIoU (%) over seeds: mean ± sample std, the number of seeds, the gain over the row "
        f"above. Generated by `python analysis/ablation_table.py {' '.join(map(str, args.results))}`."
    ]
    if len(skipped):
        notes.append("Left out (no final mIoU): " + ", ".join(f"{r} ({s})" for r, s in
                                                             zip(skipped["run_id"], skipped["status"], strict=True)) + ".")  # fmt: skip
    repeated = [name for name, seeds in summary["seeds"].items() if len(set(seeds)) < len(seeds)]
    if repeated:  # two run folders of one seed and setting: copies, or reruns that differ only in noise
        notes.append("Several runs of one seed (each counts): " + "; ".join(
            f"{name}: seeds {', '.join(map(str, summary.loc[name, 'seeds']))}" for name in repeated) + ".")  # fmt: skip
    if args.format == "csv":
        text = summary.drop(columns=["per_seed", "seeds"]).to_csv(index_label="setting")
    else:
        text = render(summary, per_class, args.format, notes)
    if args.out is None:
        print(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        per_class.to_csv(args.out.with_name(args.out.stem + "_per_class.csv"), index_label="setting")
    chart = bar_chart(summary, args.out.with_suffix(".png"))
    if args.format == "md":
        text += f"\n\n![ablation ladder: mean ± std over seeds]({chart.name})"
    args.out.write_text(text + "\n")
    print(f"wrote {args.out} and {chart}")
    return 0
