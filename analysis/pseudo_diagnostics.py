"""Pseudo-label diagnostics of finished `symda run`s: does the consistency term pick better pixels?

    symda diagnose --run runs/v2/ladder/full-s0        # writes runs/v2/ladder/full-s0/pseudo_diagnostics.json
    python analysis/pseudo_diagnostics.py runs/v2/ladder/full-s0 [runs/v2/ladder/full-s1 ...] \
        --out docs/results/v2/pseudo_diagnostics.md

`symda diagnose` (symda/pipeline/diagnose.py) rebuilds a run's round-0 networks from the store and
compares their pseudo-label choices with the target train split's true labels; this script reads the
files it wrote (a run folder's pseudo_diagnostics.json, or the file itself) and writes a markdown
report and a plot of precision against coverage beside it: per-class precision at equal coverage
with M_prob alone and with the soft and hard consistency terms, how often the paths disagree and who
is right when they do. pandas and matplotlib only: no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

DIAGNOSTICS_FILE = "pseudo_diagnostics.json"  # symda.pipeline.diagnose's, in a run folder
SCORE_NAMES = {  # symda.pseudo.diagnostics.SCORES says what each is; files of older runs hold fewer
    "prob_t": "F_T alone",
    "prob": "M_prob",
    "consis": "M_consis",
    "conf_soft": "M_conf (soft)",
    "conf_hard": "M_conf (hard)",
    "adpl": "ADPL",
}
MIDDLE = "0.6"  # the coverage of the per-class table


def read_diagnostics(path: Path) -> dict:
    """The diagnostics `symda diagnose` wrote: `path` is the file or the run folder holding it."""
    file = path / DIAGNOSTICS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {DIAGNOSTICS_FILE}; write it with `symda diagnose --run {path}`")
    return json.loads(file.read_text())


def report_tables(
    diags: dict[str, dict],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series, pd.DataFrame]:
    """(pooled precision by coverage and score, per-class precision at the middle coverage,
    disagreement, each class's share of disagreeing pixels) as DataFrames, mean over runs, and the
    pooled precision at the middle coverage of each run (runs x scores: the spread over seeds)."""
    pooled, per_class, disagreement = [], [], []
    for run, d in diags.items():
        for q, by_score in d["precision_at_coverage"].items():
            for s, precision in by_score.items():
                pooled.append(
                    {"run": run, "coverage": float(q), "score": SCORE_NAMES[s], "precision": precision["all"]}
                )
                if q == MIDDLE:
                    per_class += [{"run": run, "score": SCORE_NAMES[s], "class": c, "precision": v}
                                  for c, v in precision.items() if c != "all"]  # fmt: skip
        disagreement.append({"run": run, **d["disagreement"]})
    scores = [name for name in SCORE_NAMES.values() if name in {row["score"] for row in pooled}]
    pooled_all = pd.DataFrame(pooled)
    pooled_df = pooled_all.pivot_table(index="coverage", columns="score", values="precision")
    by_run = pooled_all[pooled_all["coverage"] == float(MIDDLE)].pivot_table(
        index="run", columns="score", values="precision"
    )
    classes = list(next(iter(diags.values()))["disagreement_by_class"])
    per_class_df = pd.DataFrame(per_class).pivot_table(index="class", columns="score", values="precision")
    per_class_df = per_class_df.reindex(classes)
    by_class = (
        pd.DataFrame([d["disagreement_by_class"] for d in diags.values()]).mean().rename("paths disagree")
    )
    return (pooled_df[scores], per_class_df[scores], pd.DataFrame(disagreement).set_index("run"), by_class,
            by_run[scores])  # fmt: skip


def _markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table, numbers as percentages with one decimal."""
    head = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for index, row in frame.iterrows():
        cells = ["" if pd.isna(v) else f"{100 * v:.1f}" for v in row]
        lines.append(
            "| " + " | ".join([f"{index:g}" if isinstance(index, float) else str(index), *cells]) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run folders that `symda diagnose` wrote into, or its files")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="markdown report; the plot goes beside it")
    args = parser.parse_args(argv)
    try:
        diags = {str(run): read_diagnostics(run) for run in args.runs}
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pooled, per_class, disagreement, disagree, by_run = report_tables(diags)
    delta = per_class.sub(per_class["M_prob"], axis=0).drop(columns="M_prob").add_prefix("Δ ")
    plot = args.out.with_suffix(".png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in pooled.columns:
        ax.plot(pooled.index * 100, pooled[name] * 100, marker="o", label=name)
    ax.set(xlabel="coverage per predicted class (%)", ylabel="pseudo-label precision (%)",
           title=f"target train, mean of {len(diags)} run(s)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=120)
    lines = [
        f"Pseudo-label diagnostics of the round-0 networks, mean over {len(diags)} run(s): "
        + ", ".join(f"`{r}`" for r in diags)
        + ".",
        f"Generated by `symda diagnose --run RUN` for each run, then `python analysis/pseudo_diagnostics.py "
        f"{' '.join(str(r) for r in args.runs)} --out {args.out}`.",
        "",
        "Precision (%) of the kept pixels when each predicted class keeps its most confident share "
        "(coverage) under each score. F_T alone ranks its own prediction (argmax P_T: the single path's "
        "labels), ADPL its per-class fusion's; the other scores rank the same fused prediction (argmax of "
        "P = w P_T + (1 - w) P_S), so there only the ranking differs:",
        "",
        _markdown(pooled),
        "",
        f"Each run at {float(MIDDLE):.0%} coverage (paired: the same networks under every score):",
        "",
        _markdown(by_run),
        "",
        f"![precision against coverage]({plot.name})",
        "",
        "Per-class precision (%) at 60% coverage, each score's difference to M_prob, and the "
        "share of the class's true pixels where the two paths disagree:",
        "",
        _markdown(pd.concat([per_class, delta, disagree], axis=1)),
        "",
        "How often the two paths disagree (argmax P_T != argmax P_S, share of labelled pixels), and in "
        "those pixels the share each prediction gets right:",
        "",
        _markdown(disagreement),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
