"""The validator study's table and plots: how well each label-free validator picks among the study's
(configuration, checkpoint) points, per seed and pooled.

    python analysis/validator_study.py runs/study/validators [--out DIR] [--package-file symda/select/study.json]

Reads <study>/points.csv (written by tune/validator_study.py; rebuilt from the cell folders when
missing). Writes into --out (default <study>/report): validators.md (the table), scatter.png (every
validator against true mIoU, one row of panels per seed), checkpoints.png (true mIoU and the
validators along each base run), study.json (the numbers; --package-file writes a copy where the
sweep summary reads the expected regret). Files only: no Ray, no torch.

For each validator: Spearman rho with the true mIoU and its 95% bootstrap interval (points resampled
within each seed), top-1 regret (best true mIoU minus that of the validator's pick) and top-3 regret
(minus the best of its three picks). Pooled = the mean over seeds: selection happens within one
seed's candidates. The winner is the validator with the lowest pooled top-1 regret (ties within 0.1
mIoU: the higher rho).
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

from symda.select import VALIDATORS  # noqa: E402
from symda.select.stats import validator_study  # noqa: E402

GOAL_RHO, GOAL_REGRET = 0.7, 1.0


def load_points(study: Path) -> pd.DataFrame:
    path = study / "points.csv"
    if path.is_file():
        return pd.read_csv(path)
    return collect_points(study)


def collect_points(out: Path) -> pd.DataFrame:
    """Every F_T evaluation of the study's finished cells under `out` as a DataFrame, one row per
    (network artifact, step): seed, variant (the first cell that reached it), stage (F_T_r0,
    F_T_r1, ...), step, key, miou (its true val mIoU), miou_se (its bootstrap std), and every
    validator by name. Files only: each cell's result.json and its networks' evaluations in the store."""
    from symda.artifacts import ArtifactStore
    from symda.records import EVALUATIONS, Evaluation, NetworkId, read_jsonl

    rows: dict[tuple[str, int], dict] = {}
    for result in sorted(Path(out).glob("*/result.json")):
        record = json.loads(result.read_text())
        store = ArtifactStore(record["artifacts_dir"])
        variant = result.parent.name.rsplit("-s", 1)[0]
        for name in sorted(k.removeprefix("artifacts.") for k in record if k.startswith("artifacts.")):
            network = NetworkId.parse(name)
            if network is None or network.path != "T":
                continue
            key = record[f"artifacts.{name}"]
            for line in read_jsonl(store.network_path(network, key) / EVALUATIONS):
                e = Evaluation.from_dict(line)
                if (key, e.step) not in rows:
                    rows[key, e.step] = {"seed": record["seed"], "variant": variant, "stage": name, "step": e.step,
                                         "key": key, "miou": e.miou, "miou_se": e.miou_se,
                                         **{v: e.validators.get(v, math.nan) for v in VALIDATORS}}  # fmt: skip
    frame = pd.DataFrame(list(rows.values()))
    if len(frame):
        frame = frame.sort_values(["seed", "variant", "stage", "step"]).reset_index(drop=True)
    return frame


def pick_winner(pooled: pd.DataFrame) -> str:
    """Lowest pooled top-1 regret; within 0.1 mIoU of it, the highest rho."""
    ok = pooled[pooled["regret1"].notna()]
    best = ok["regret1"].min()
    close = ok[ok["regret1"] <= best + 0.1]
    return str(close.sort_values("rho", ascending=False).iloc[0]["validator"])


FIGURES = ("rho", "rho_lo", "rho_hi", "regret1", "regret3")  # a validator's figures in the JSON files


def clean(v: float | None) -> float | None:
    """A number for JSON: NaN (never scored) as null."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def pooled_figures(pooled: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """{validator: {rho, rho_lo, rho_hi, regret1, regret3}} of a study table's pooled rows."""
    return {r["validator"]: {k: clean(r[k]) for k in FIGURES} for _, r in pooled.iterrows()}


def write_numbers(numbers: dict, path: Path, package_file: Path | None = None) -> None:
    """A study's numbers as JSON at `path`, and a copy at `package_file` (where the sweep summary reads it)."""
    text = json.dumps(numbers, indent=2) + "\n"
    path.write_text(text)
    if package_file is not None:
        Path(package_file).write_text(text)


def _num(x: float, fmt: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def table_lines(table: pd.DataFrame, points: pd.DataFrame, winner: str) -> list[str]:
    seeds = sorted(points["seed"].unique())
    lines = [
        "| validator | "
        + " | ".join(f"seed {s}: rho [95%] / top-1 / top-3" for s in seeds)
        + " | pooled rho [95%] | pooled top-1 | pooled top-3 |",
        "| --- | " + " | ".join("---" for _ in seeds) + " | --- | --- | --- |",
    ]
    by = table.set_index(["group", "validator"])
    for name in VALIDATORS:
        cells = []
        for s in seeds:
            r = by.loc[(s, name)]
            cells.append(f"{_num(r['rho'], '+.2f')} [{_num(r['rho_lo'], '+.2f')}, {_num(r['rho_hi'], '+.2f')}] / "
                         f"{_num(r['regret1'], '.2f')} / {_num(r['regret3'], '.2f')} (n {int(r['n'])})")  # fmt: skip
        r = by.loc[("pooled", name)]
        mark = " **(winner)**" if name == winner else ""
        lines.append(f"| `{name}`{mark} | " + " | ".join(cells) + f" | {_num(r['rho'], '+.2f')} "
                     f"[{_num(r['rho_lo'], '+.2f')}, {_num(r['rho_hi'], '+.2f')}] | {_num(r['regret1'], '.2f')} | "
                     f"{_num(r['regret3'], '.2f')} |")  # fmt: skip
    return lines


def checkpoint_regrets(points: pd.DataFrame) -> pd.DataFrame:
    """Checkpoint selection within one network's training: for each network (seed, key) evaluated at
    least twice, the regret of picking its checkpoint by each validator, and of keeping the last; the
    mean over networks. Columns: validator (or "last"), networks, mean, max."""
    from symda.select.stats import regret

    rows = []
    groups = [g for _, g in points.groupby(["seed", "key"]) if len(g) >= 2]
    for name in ["last", *VALIDATORS]:
        values = []
        for g in groups:
            g = g.sort_values("step")
            scores = g["step"] if name == "last" else g[name]
            values.append(regret(scores.to_numpy(float), g["miou"].to_numpy(float)))
        values = pd.Series(values, dtype=float).dropna()
        rows.append({"validator": name, "networks": len(values), "mean": values.mean(), "max": values.max()})
    return pd.DataFrame(rows)


def final_networks(points: pd.DataFrame) -> pd.DataFrame:
    """The points that are a configuration's delivered network: the last evaluation of each network of
    the last round (what a hyper-parameter search compares, without the checkpoints along the way)."""
    last_round = points["stage"] == points.groupby("seed")["stage"].transform("max")
    last_step = points["step"] == points.groupby("key")["step"].transform("max")
    return points[last_round & last_step]


def scatter_plot(points: pd.DataFrame, path: Path, table: pd.DataFrame) -> Path:
    seeds = sorted(points["seed"].unique())
    by = table.set_index(["group", "validator"])
    fig, axes = plt.subplots(len(seeds), len(VALIDATORS), figsize=(2.6 * len(VALIDATORS), 2.4 * len(seeds)),
                             squeeze=False)  # fmt: skip
    stages = sorted(points["stage"].unique())
    colours = dict(zip(stages, ("#4c72b0", "#dd8452", "#55a868", "#c44e52"), strict=False))
    for i, seed in enumerate(seeds):
        part = points[points["seed"] == seed]
        for j, name in enumerate(VALIDATORS):
            ax = axes[i][j]
            for stage in stages:
                at = part[part["stage"] == stage]
                ax.scatter(at[name], at["miou"], s=10, color=colours.get(stage, "grey"), label=stage)
            rho = by.loc[(seed, name), "rho"]
            ax.set_title(f"{name} (s{seed}) rho {_num(rho, '+.2f')}", fontsize=8)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("true val mIoU", fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _scaled(values: pd.Series, over: pd.Series) -> pd.Series:
    """`values` min-max scaled by the range of `over` (its seed's points), so curves share an axis."""
    lo, hi = over.min(), over.max()
    return (values - lo) / (hi - lo) if hi > lo else values * 0


def checkpoint_plot(points: pd.DataFrame, path: Path, validators: list[str]) -> Path:
    """True mIoU and each validator (min-max scaled per seed) along the base variant's F_T checkpoints."""
    seeds = sorted(points["seed"].unique())
    fig, axes = plt.subplots(1, len(seeds), figsize=(4.2 * len(seeds), 3.2), squeeze=False)
    for ax, seed in zip(axes[0], seeds, strict=True):
        part = points[(points["seed"] == seed)]
        base = part[part["variant"] == "base"] if (part["variant"] == "base").any() else part
        order = base.sort_values(["stage", "step"])
        x = range(len(order))
        labels = [f"{st[-2:]}:{int(sp)}" for st, sp in zip(order["stage"], order["step"], strict=True)]
        ax.plot(x, _scaled(order["miou"], part["miou"]), color="black", lw=2, label="true mIoU")
        for name in validators:
            ax.plot(x, _scaled(order[name], part[name]), lw=1, label=name)
        ax.set_xticks(list(x), labels, rotation=60, fontsize=6)
        ax.set_title(f"seed {seed}: base run, F_T checkpoints (scaled)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(study: Path, out: Path, package_file: Path | None = None) -> Path:
    points = load_points(study)
    if points.empty:
        raise SystemExit(f"error: {study}: no points (no finished cell with F_T evaluations)")
    out.mkdir(parents=True, exist_ok=True)
    table = validator_study(points, list(VALIDATORS), truth="miou", group="seed")
    pooled = table[table["group"] == "pooled"]
    winner = pick_winner(pooled)
    w = pooled.set_index("validator").loc[winner]
    reached = w["rho"] >= GOAL_RHO and w["regret1"] <= GOAL_REGRET
    seeds = sorted(points["seed"].unique())
    checkpoints = checkpoint_regrets(points)
    finals = final_networks(points)
    finals_table = validator_study(finals, list(VALIDATORS), truth="miou", group="seed")
    per_seed = points.groupby("seed").agg(n=("miou", "size"), lo=("miou", "min"), hi=("miou", "max"),
                                          se=("miou_se", "median"))  # fmt: skip
    lines = [
        f"# Validator study ({len(points)} points, seeds {', '.join(map(str, seeds))})", "",
        "Each point is one F_T network (a configuration at one of its evaluated checkpoints), scored by "
        "every validator (no target label read) and by its true val mIoU.", "",
        "| seed | points | true mIoU range | median bootstrap SE of a point's mIoU |", "| --- | --- | --- | --- |",
        *[f"| {s} | {int(r.n)} | {r.lo:.2f} - {r.hi:.2f} | {r.se:.2f} |" for s, r in per_seed.iterrows()], "",
        "rho: Spearman with the true mIoU [95% bootstrap interval]; top-1 / top-3: regret in mIoU points "
        "(best true mIoU of the seed minus the validator's pick; minus the best of its 3 picks). n: "
        "points the validator could score (the agreement validators need F_S: not on no_translation's).", "",
        *table_lines(table, points, winner), "",
        f"Choosing among configurations only (each cell's final network: {len(finals)} points, "
        f"{finals.groupby('seed').size().min()}-{finals.groupby('seed').size().max()} per seed; intervals are wide "
        "with so few):", "",
        *table_lines(finals_table, finals, winner), "",
        "Checkpoint selection within one network's training (each F_T stage of a run, evaluated at every "
        "checkpoint): regret of the checkpoint each validator picks, against keeping the last.", "",
        "| pick by | networks | mean regret | worst |", "| --- | --- | --- | --- |",
        *[f"| {'`' + r.validator + '`' if r.validator != 'last' else 'the last checkpoint'} | {r.networks} | "
          f"{_num(r.mean, '.2f')} | {_num(r.max, '.2f')} |" for r in checkpoints.itertuples()], "",
        f"**Winner: `{winner}`** (pooled rho {w['rho']:+.2f}, top-1 regret {w['regret1']:.2f}, top-3 "
        f"{w['regret3']:.2f}). Goal (rho >= {GOAL_RHO}, top-1 regret <= {GOAL_REGRET}): "
        + ("reached." if reached else "**not reached**."), "",
        "![validators against true mIoU](scatter.png)", "",
        "![checkpoints of the base run](checkpoints.png)", "",
    ]  # fmt: skip
    scatter_plot(points, out / "scatter.png", table)
    best_three = list(pooled.sort_values("regret1")["validator"][:3])
    checkpoint_plot(points, out / "checkpoints.png", best_three)
    (out / "validators.md").write_text("\n".join(lines) + "\n")

    summary = {
        "winner": winner, "goal_reached": bool(reached), "points": int(len(points)), "seeds": [int(s) for s in seeds],
        "pooled": pooled_figures(pooled),
        "finals_pooled": pooled_figures(finals_table[finals_table["group"] == "pooled"]),
        "checkpoint_regret": {r.validator: clean(r.mean) for r in checkpoints.itertuples()},
        "per_seed": {str(s): {r["validator"]: {k: clean(r[k]) for k in ("n", "rho", "regret1", "regret3")}
                              for _, r in table[table["group"] == s].iterrows()} for s in seeds},
    }  # fmt: skip
    write_numbers(summary, out / "study.json", package_file)
    return out / "validators.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path, help="the study's folder (runs/study/validators)")
    p.add_argument(
        "--out", type=Path, help="folder of validators.md, the PNGs, study.json (default STUDY/report)"
    )
    p.add_argument("--package-file", type=Path, help="also write study.json here (symda/select/study.json)")
    args = p.parse_args(argv)
    if not args.study.is_dir():
        print(f"error: {args.study}: no such folder", file=sys.stderr)
        return 2
    path = report(args.study, args.out or args.study / "report", args.package_file)
    print(f"wrote {path}")
    print(path.read_text())
    return 0
