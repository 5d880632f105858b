"""The selection study's tables and plots: how well each label-free validator picks among the
configurations a sweep compares, at equal training length, per sweep kind.

    python analysis/selection_study.py runs/study/selection_threshold runs/study/selection_adversarial \
        runs/study/selection_stargan --out docs/results/selection [--package-file symda/select/selection.json]

Each folder is one study (tune/validator_study.py with configs/study/selection_<kind>.yaml); its kind
is the folder's name after "selection_". The points of a kind are its cells' final networks (the last
evaluation of the last round: one per configuration and seed, all at the same progress); a
configuration's checkpoints along its round make a separate table (checkpoint selection), never
pooled with the configurations. Per kind and validator: Spearman rho with the true val mIoU (95%
bootstrap interval, points resampled within each seed) and top-1 / top-3 regret, per seed and pooled
(the mean over seeds: a sweep chooses within one seed). The kind's winner is the lowest pooled top-1
regret (within 0.1 mIoU: the higher rho). Writes selection.md, one scatter plot per kind, a bar chart
of pooled rho and regret, and selection.json (--package-file: a copy where the sweep summary reads
it). Files only: no Ray, no torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from symda.reports.validator_study import (  # noqa: E402
    _num,
    checkpoint_regrets,
    clean,
    final_networks,
    load_points,
    pick_winner,
    pooled_figures,
    scatter_plot,
    table_lines,
    write_numbers,
)
from symda.select import VALIDATORS  # noqa: E402
from symda.select.stats import GOAL_REGRET, GOAL_RHO, spearman, validator_study  # noqa: E402

KIND_PREFIX = "selection_"
RANGES_FILE = "ranges.json"  # {key: [low, high]} of the study's sampled parameters (symda.sweeps.study)


def study_kind(folder: Path) -> str:
    """The sweep kind a study folder measures: its name after "selection_" (or the whole name)."""
    return folder.name.removeprefix(KIND_PREFIX)


def kind_report(points: pd.DataFrame) -> dict:
    """The final networks of one kind's points, their per-seed and pooled table, the winner, and the
    checkpoint table of the same points."""
    finals = final_networks(points)
    table = validator_study(finals, list(VALIDATORS), truth="miou", group="seed")
    pooled = table[table["group"] == "pooled"]
    winner = pick_winner(pooled)
    w = pooled.set_index("validator").loc[winner]
    return {
        "finals": finals,
        "table": table,
        "pooled": pooled,
        "winner": winner,
        "reached": bool(w["rho"] >= GOAL_RHO and w["regret1"] <= GOAL_REGRET),
        "checkpoints": checkpoint_regrets(points),
        "reproducibility": reproducibility(finals),
    }


def reproducibility(finals: pd.DataFrame) -> float:
    """How far the configurations' true mIoU ranks agree between seeds: the mean Spearman rho over
    pairs of seeds, on the configurations every seed has (nan with fewer than 3 of them). Near 0: the
    kind's configurations differ by no more than training and evaluation noise, and no validator can
    rank them; near 1: they differ, and a validator has something to find."""
    wide = finals.pivot_table(index="variant", columns="seed", values="miou").dropna()
    seeds = list(wide.columns)
    if len(wide) < 3 or len(seeds) < 2:
        return math.nan
    pairs = [spearman(wide[a], wide[b]) for i, a in enumerate(seeds) for b in seeds[i + 1 :]]
    return float(sum(pairs) / len(pairs))


def summary_plot(reports: dict[str, dict], path: Path) -> Path:
    """Pooled rho and top-1 regret of every validator, one group of bars per sweep kind."""
    kinds = list(reports)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.8 / max(len(kinds), 1)
    for k, kind in enumerate(kinds):
        by = reports[kind]["pooled"].set_index("validator")
        x = [i + k * width for i in range(len(VALIDATORS))]
        for ax, col in zip(axes, ("rho", "regret1"), strict=True):
            ax.bar(x, [by.loc[v, col] if v in by.index else math.nan for v in VALIDATORS], width, label=kind)
    for ax, title in zip(axes, ("pooled Spearman rho (goal >= 0.7)", "pooled top-1 regret, mIoU (goal <= 0.5)"),
                         strict=True):  # fmt: skip
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(VALIDATORS))], list(VALIDATORS), rotation=45,
                      ha="right", fontsize=7)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.axhline(GOAL_RHO if "rho" in title else GOAL_REGRET, color="black", lw=0.8, ls="--")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(studies: list[Path], out: Path, package_file: Path | None = None) -> Path:
    """Write the selection study's report for the study folders `studies` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict] = {}
    lines = ["# Selection study: validators among configurations at equal progress, per sweep kind", ""]
    ranges: dict[str, dict[str, list[float]]] = {}
    for folder in studies:
        points = load_points(folder)
        if points.empty:
            raise SystemExit(f"error: {folder}: no points (no finished cell with F_T evaluations)")
        kind = study_kind(folder)
        r = reports[kind] = kind_report(points)
        # where the figures hold: written by tune/validator_study.py for a study drawn from a sweep's space
        ranges[kind] = (
            json.loads((folder / RANGES_FILE).read_text()) if (folder / RANGES_FILE).is_file() else {}
        )
        finals = r["finals"]
        per_seed = finals.groupby("seed").agg(n=("miou", "size"), lo=("miou", "min"), hi=("miou", "max"),
                                              se=("miou_se", "median"))  # fmt: skip
        w = r["pooled"].set_index("validator").loc[r["winner"]]
        lines += [
            f"## {kind} sweep (`{folder}`)", "",
            f"{len(finals)} configurations' final networks ({finals['variant'].nunique()} configurations x "
            f"{finals['seed'].nunique()} seeds), each scored by every validator (no target label read) and "
            "by its true val mIoU.", "",
            "| seed | configurations | true mIoU range | median bootstrap SE of a point's mIoU | range / SE |",
            "| --- | --- | --- | --- | --- |",
            *[f"| {s} | {int(x.n)} | {x.lo:.2f} - {x.hi:.2f} | {x.se:.2f} | {(x.hi - x.lo) / x.se:.1f} |"
              for s, x in per_seed.iterrows()], "",
            f"Do the configurations differ? Their true mIoU ranks agree between seeds with a mean Spearman rho of "
            f"**{_num(r['reproducibility'], '+.2f')}** (pairs of seeds, the same configurations). "
            + ("Near 0, with a range of a few SE: they differ by no more than training and evaluation noise, so "
               "no validator can rank them reproducibly here, and the top-1 regret (what a pick loses) is the "
               "figure that matters." if not r["reproducibility"] >= 0.3 else
               "They differ reproducibly: a validator has something to find."), "",
            *table_lines(r["table"], finals, r["winner"]), "",
            *([f"The configurations span {', '.join(f'{k} {lo:.3g} to {hi:.3g}' for k, (lo, hi) in ranges[kind].items())}: "
               "the figures hold there, and a sweep's summary warns when its pick lies outside.", ""]
              if ranges[kind] else []),
            f"**Best here: `{r['winner']}`** (pooled rho {_num(w['rho'], '+.2f')}, top-1 regret "
            f"{_num(w['regret1'], '.2f')}). Goal (rho >= {GOAL_RHO}, top-1 regret <= {GOAL_REGRET}): "
            + ("reached." if r["reached"] else "**not reached**."), "",
            "Checkpoint selection within each configuration's round (a separate question: its evaluations "
            "along the round): regret of the checkpoint each validator picks, against keeping the last.", "",
            "| pick by | networks | mean regret | worst |", "| --- | --- | --- | --- |",
            *[f"| {'`' + x.validator + '`' if x.validator != 'last' else 'the last checkpoint'} | {x.networks} | "
              f"{_num(x.mean, '.2f')} | {_num(x.max, '.2f')} |" for x in r["checkpoints"].itertuples()], "",
            f"![{kind}: validators against true mIoU]({kind}.png)", "",
        ]  # fmt: skip
        scatter_plot(finals.assign(stage="final"), out / f"{kind}.png", r["table"])
    summary_plot(reports, out / "selection.png")
    lines += ["![pooled rho and regret per kind](selection.png)", ""]
    (out / "selection.md").write_text("\n".join(lines) + "\n")

    summary = {
        kind: {
            "winner": r["winner"], "goal_reached": r["reached"], "points": int(len(r["finals"])),
            "seeds": sorted(int(s) for s in r["finals"]["seed"].unique()),
            "pooled": pooled_figures(r["pooled"]),
            "checkpoint_regret": {x.validator: clean(x.mean) for x in r["checkpoints"].itertuples()},
            "reproducibility": clean(r["reproducibility"]),
            "ranges": ranges[kind],
        }
        for kind, r in reports.items()
    }  # fmt: skip
    write_numbers(summary, out / "selection.json", package_file)
    return out / "selection.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="+", type=Path, help="study folders (runs/study/selection_<kind>)")
    p.add_argument("--out", type=Path, default=Path("docs/results/selection"), help="report folder")
    p.add_argument(
        "--package-file", type=Path, help="also write selection.json here (symda/select/selection.json)"
    )
    args = p.parse_args(argv)
    if missing := [s for s in args.studies if not s.is_dir()]:
        print(f"error: {', '.join(map(str, missing))}: no such folder", file=sys.stderr)
        return 2
    path = report(args.studies, args.out, args.package_file)
    print(f"wrote {path}")
    return 0
