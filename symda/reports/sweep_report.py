"""Report of one sweep: the metric against each swept parameter, Optuna's parameter importance, the
per-class IoU of the best trial against a baseline, and each label-free validator against the true
mIoU with its Spearman rank correlation. PNG files plus a short report.md that links them.

    python analysis/sweep_report.py runs/sweeps/threshold-20261127-031500 [--out DIR] [--baseline RUN]

The baseline is, in this order: --baseline (a run folder or result.json, e.g. the base config run
with `symda run`), a finished trial whose swept values equal the base config's (the base config
rerun inside the sweep), or the median finished trial by the metric; report.md says which.
Reads files only (symda.results.load_results and the sweep's optuna.db): no Ray cluster, no torch.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines that run sweeps
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from symda.results import IOU_COLUMNS, is_sweep_dir, load_results, spearman  # noqa: E402
from symda.select import VALIDATORS  # noqa: E402


def swept_keys(trials: pd.DataFrame) -> list[str]:
    """The swept parameters (params.json keys of every trial), in first-seen order."""
    keys: dict[str, None] = {}
    for text in trials["swept_keys"].dropna():
        keys.update(dict.fromkeys(k for k in str(text).split(",") if k))
    return list(keys)


def active(trials: pd.DataFrame, key: str) -> pd.Series:
    """Whether each trial sampled `key` (False where a `when:` condition left it inactive)."""
    return trials["swept_keys"].fillna("").str.split(",").apply(lambda keys: key in keys)


def finished_trials(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that ran to the end (ASHA did not stop them, no error) and have the metric."""
    return trials[(trials["finished"] == True) & trials[metric].notna()]  # noqa: E712 (True or NaN)


def param_scatter(trials: pd.DataFrame, keys: list[str], metric: str, path: Path) -> Path:
    """One panel per swept parameter: the metric of each trial against its value; finished trials
    filled, trials stopped early (their last reported value) hollow. Categorical values are spread
    over integer positions; an inactive conditional parameter (NaN) leaves its trial out of that panel."""
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.0 * max(1, len(keys)), 3.4), squeeze=False)
    done = trials["finished"] == True  # noqa: E712
    for ax, key in zip(axes[0], keys, strict=False):
        values = trials[key] if key in trials.columns else pd.Series(math.nan, index=trials.index)
        ok = active(trials, key) & values.notna() & trials[metric].notna()
        x = values[ok]
        if not pd.api.types.is_numeric_dtype(x.infer_objects()):
            categories = sorted(x.astype(str).unique())
            x = x.astype(str).map({c: i for i, c in enumerate(categories)})
            ax.set_xticks(range(len(categories)), categories)
        ax.scatter(x[done[ok]], trials[metric][ok & done], color="#4c72b0", label="finished")
        ax.scatter(x[~done[ok]], trials[metric][ok & ~done], facecolors="none", edgecolors="#c44e52",
                   label="stopped early")  # fmt: skip
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def param_importance(exp_dir: Path) -> tuple[dict[str, float] | None, str]:
    """(Optuna's parameter importances of the sweep's study, "") or (None, why there are none)."""
    import optuna

    db = exp_dir / "optuna.db"
    if not db.is_file():
        return None, f"no {db}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    name = exp_dir.name if exp_dir.name in names else (names[0] if len(names) == 1 else None)
    if name is None:
        return None, f"{db} holds studies {names}, none named {exp_dir.name}"
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return None, f"needs at least 2 completed trials, the study has {len(complete)}"
    try:
        with warnings.catch_warnings():  # e.g. "quantiles select the same set of trials" on tiny sweeps
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study), ""
    except (RuntimeError, ValueError) as err:  # e.g. every completed trial has the same values
        return None, f"Optuna could not compute it ({err})"


def bar_plot(values: dict[str, float], path: Path, xlabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.0, 0.5 + 0.4 * len(values)))
    ax.barh(list(values)[::-1], list(values.values())[::-1], color="#4c72b0")
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def base_values(exp_dir: Path, keys: list[str]) -> dict[str, Any] | None:
    """The swept keys' values in the sweep's base config (+ fixed overrides), or None if sweep.json
    or the base config file is gone."""
    import json

    from symda.config import ConfigError, flatten, load_config

    try:
        settings = json.loads((exp_dir / "sweep.json").read_text())
        cfg = load_config(
            settings["base_config"], {**settings.get("overrides", {}), **settings.get("paths", {})}
        )
    except (OSError, ValueError, KeyError, ConfigError):
        return None
    flat = flatten(cfg)
    return {k: flat.get(k) for k in keys}


def pick_baseline(
    done: pd.DataFrame, keys: list[str], exp_dir: Path, metric: str, baseline: Path | None
) -> tuple[pd.Series | None, str]:
    """(the baseline row, a sentence saying what it is); see the module docstring for the order."""
    if baseline is not None:
        runs = load_results(baseline)
        runs = runs[(runs["finished"] == True) & runs["miou"].notna()]  # noqa: E712
        if runs.empty:
            raise SystemExit(f"error: --baseline {baseline}: no finished run there")
        return runs.iloc[0], f"the run at {baseline} (--baseline)"
    base = base_values(exp_dir, keys)
    if base is not None:
        for _, row in done.iterrows():  # a `when:` condition's inactive keys do not count
            if all(_same(row.get(k), v) for k, v in base.items() if key_active(row, k)):
                return row, f"trial {row['trial_id']}, whose swept values equal the base config's (its rerun)"
    if len(done) < 2:
        return (
            None,
            "none: fewer than 2 finished trials and no rerun of the base config (pass --baseline RUN)",
        )
    ranked = done.sort_values(metric).reset_index(drop=True)
    row = ranked.iloc[(len(ranked) - 1) // 2]
    return row, (f"the median finished trial by {metric}, {row['trial_id']} (no rerun of the base config was "
                 "found; pass --baseline RUN for one)")  # fmt: skip


def key_active(row: pd.Series, key: str) -> bool:
    return key in str(row.get("swept_keys", "")).split(",")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def per_class_plot(best: pd.Series, baseline: pd.Series, labels: tuple[str, str], path: Path) -> Path:
    """Grouped bars: per-class IoU of the best trial and the baseline, road ... bicycle."""
    names = [c[4:] for c in IOU_COLUMNS]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(11.0, 3.6))
    for offset, row, label in ((-0.2, best, labels[0]), (0.2, baseline, labels[1])):
        ax.bar([i + offset for i in x], [row.get(c, math.nan) for c in IOU_COLUMNS], width=0.4, label=label)
    ax.set_xticks(list(x), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def validator_plot(done: pd.DataFrame, path: Path) -> tuple[Path, dict[str, float]]:
    """Each validator the trials report against the true mIoU over finished trials, with Spearman's rho."""
    shown = [v for v in VALIDATORS if v in done and done[v].notna().any()] or ["entropy"]
    rhos = {v: spearman(done[v], done["miou"]) for v in shown}
    fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown) + 1, 3.4), squeeze=False)
    for ax, proxy in zip(axes[0], shown, strict=True):
        ax.scatter(done[proxy], done["miou"], color="#4c72b0")
        ax.set_xlabel(proxy)
        ax.set_ylabel("miou (target val)")
        ax.set_title(
            "Spearman rho " + ("n/a (< 3 trials)" if math.isnan(rhos[proxy]) else f"{rhos[proxy]:+.2f}")
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, rhos


def report(exp_dir: Path, out: Path, metric: str = "miou", baseline: Path | None = None) -> Path:
    """Write the plots and report.md into `out`; return report.md's path."""
    trials = load_results(exp_dir)
    trials = trials[trials["sweep"] == exp_dir.name]
    keys = swept_keys(trials)
    done = finished_trials(trials, metric)
    out.mkdir(parents=True, exist_ok=True)
    counts = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
    lines = [f"# Sweep {exp_dir.name}", "", f"{len(trials)} trials ({counts}); {len(done)} finished with "
             f"{metric}. Swept: {', '.join(f'`{k}`' for k in keys) or 'nothing'}.", ""]  # fmt: skip
    for _, row in trials[trials["status"] == "ERROR"].iterrows():
        lines.append(f"- errored {row['trial_id']}: {row['error']}")
    lines += ["", f"## {metric} against each swept parameter", ""]
    lines.append(
        f"![{metric} against the swept parameters]({param_scatter(trials, keys, metric, out / 'params.png').name})"
    )
    lines += [
        "",
        "## Parameter importance (optuna.importance.get_param_importances, its default evaluator)",
        "",
    ]
    importance, why = param_importance(exp_dir)
    if importance:
        lines += ["| parameter | importance |", "| --- | --- |"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in importance.items()]
        lines += [
            "",
            f"![parameter importance]({bar_plot(importance, out / 'importance.png', 'importance').name})",
        ]
    else:
        lines.append(f"Not computed: {why}.")
    lines += ["", "## Best trial against the baseline, per class", ""]
    if done.empty:
        lines.append(f"No finished trial with {metric}.")
    else:
        best = done.sort_values(metric, ascending=False).iloc[0]
        params = ", ".join(f"`{k}`={_fmt(best[k])}" for k in keys if key_active(best, k))
        lines.append(f"Best by {metric}: trial {best['trial_id']} ({metric} {best[metric]:.2f}; {params}).")
        base_row, which = pick_baseline(done, keys, exp_dir, metric, baseline)
        lines.append(f"Baseline: {which}.")
        if base_row is not None and base_row["source"] == best["source"]:
            lines.append("The best trial is the baseline: nothing to compare.")
        elif base_row is not None:
            lines.append(
                f"mIoU {best['miou']:.2f} against {base_row['miou']:.2f} ({best['miou'] - base_row['miou']:+.2f})."
            )
            labels = (f"best ({best['trial_id']})", f"baseline ({base_row['run_id']})")
            lines += [
                "",
                f"![per-class IoU]({per_class_plot(best, base_row, labels, out / 'per_class.png').name})",
            ]
    lines += ["", "## Label-free validators against the true mIoU", ""]
    plot_path, rhos = validator_plot(done, out / "validators.png")
    for name, rho in rhos.items():
        value = "n/a (needs 3 finished trials)" if math.isnan(rho) else f"{rho:+.3f}"
        lines.append(
            f"- Spearman rank correlation of `{name}` with miou over {len(done)} finished trials: {value}"
        )
    lines += ["", f"![validators against mIoU]({plot_path.name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a sweep folder (runs/sweeps/<name>)")
    p.add_argument("--out", type=Path, help="folder for report.md and the PNGs (default SWEEP/report)")
    p.add_argument("--metric", default="miou", choices=("miou", "miou_fused", *VALIDATORS))
    p.add_argument("--baseline", type=Path, help="run folder or result.json to compare the best trial with")
    args = p.parse_args(argv)
    if not args.sweep.is_dir() or not is_sweep_dir(args.sweep):
        print(f"error: {args.sweep}: not a sweep folder (no sweep.json, experiment_state-*.json or trial folders)",
              file=sys.stderr)  # fmt: skip
        return 2
    path = report(args.sweep.resolve(), args.out or args.sweep / "report", args.metric, args.baseline)
    print(f"wrote {path}")
    return 0
