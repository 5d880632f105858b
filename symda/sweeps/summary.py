"""The end of a sweep: one table of every trial, how well each validator would have chosen, the best config.

Reads only the experiment folder (Tune's ExperimentAnalysis needs no running cluster), so a finished
or interrupted sweep can be summarised again at any time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symda.config import load_config, save_config
from symda.results import error_line
from symda.select import VALIDATORS
from symda.select.stats import GOAL_REGRET, GOAL_RHO, regret, spearman

RESULT_KEYS = ("miou", "miou_se", "miou_fused", *VALIDATORS)
# What the validator study measured (pooled over its seeds), shipped with the package: the summary
# prints it next to a sweep's own figures, so a user knows how far to trust a label-free pick.
STUDY_FILE = Path(__file__).resolve().parents[1] / "select" / "study.json"
# What the selection study measured per sweep kind (configurations at equal progress, pooled over its
# seeds): {kind: {"winner", "goal_reached", "pooled": {validator: {rho, regret1, ...}}}}. A sweep's kind
# is its space file's name (threshold, adversarial, stargan).
SELECTION_FILE = Path(__file__).resolve().parents[1] / "select" / "selection.json"
TRUSTED_RHO = 0.5  # below it (or unmeasured) the summary warns that the selecting validator may mislead


@dataclass
class SweepSummary:
    """What a sweep leaves behind."""

    exp_dir: Path
    table: Any  # pandas.DataFrame, one row per trial: finished (by select_by), stopped by ASHA, errored
    select_by: str
    correlations: dict[str, float]  # Spearman rank correlation with miou over the finished trials
    # {validator: {rho, regret (finished trials), rho_rung, regret_rung (all trials at `rung`)}}
    validators: dict[str, dict[str, float]]
    spread: dict[str, float]  # finished trials' miou: n, min, max, std, and the median bootstrap miou_se
    rung_spread: dict[str, float]  # the same over every trial at `rung`, the deepest progress all reached
    n_finished: int
    best_config: Path | None
    optuna_db: Path
    dashboard: str
    rung: int = 0  # 0: no trial reported
    kind: str = ""  # the sweep's space file name: which row of the selection study applies
    pick: dict[str, Any] | None = None  # the best finished trial's params (what best_config.yaml sets)


def trials_table(exp_dir: Path, keys: list[str], select_by: str) -> tuple[Any, dict[str, Any]]:
    """One row per trial: id, Tune status, swept params (dotted keys; None = inactive), the last
    reported miou, miou_se, miou_fused, every validator, progress, whether it finished, its error.
    Also every non-errored trial's history: {trial id: DataFrame of its results (progress, miou,
    miou_se, ...)}, for `rung_scores`."""
    import pandas as pd
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(exp_dir))
    histories = {}
    rows = []
    for t in analysis.trials:
        history = analysis.trial_dataframes.get(t.trial_id)  # keyed by trial id in Ray 2.60
        if t.status != "ERROR" and history is not None and "progress" in history:
            histories[t.trial_id] = history
        last = t.last_result or {}
        row: dict[str, Any] = {"trial_id": t.trial_id, "status": t.status}
        row.update({k: t.config.get(k) for k in keys})
        row.update({k: last.get(k, math.nan) for k in RESULT_KEYS})
        row["start_miou"] = last.get("start_miou", math.nan)  # the adapted F_T's (round 0)
        row["start_miou_fused"] = last.get("start_miou_fused", math.nan)
        row["gain"] = row["miou"] - row["start_miou"]  # what the trial's self-training added
        row["progress"] = last.get("progress", 0)
        row["finished"] = bool(last.get("finished", False))
        row["error"] = error_line(Path(t.path), t.error_file) if t.status == "ERROR" else ""
        row["translator_identity"] = translator_identity(last.get("result_json"))
        rows.append(row)
    columns = ["trial_id", "status", *keys, *RESULT_KEYS, "gain", "progress", "finished", "error"]
    table = pd.DataFrame(rows, columns=[*columns, "start_miou", "start_miou_fused", "translator_identity"])
    # Finished trials first (their values are comparable), then those ASHA stopped (early values),
    # then errored ones; by the selected metric within each group.
    group = (~table["finished"]).astype(int) + 2 * (table["status"] == "ERROR").astype(int)
    order = table.assign(_group=group).sort_values(
        ["_group", select_by], ascending=[True, False], na_position="last"
    )
    return table.loc[order.index].reset_index(drop=True), histories


def translator_identity(result_json: str | None) -> bool | None:
    """Whether a finished trial's translator learned the identity (its run's result.json,
    translation.identity; symda.pipeline.stages.translation_check); None where that is not recorded."""
    if not result_json:
        return None
    try:
        return json.loads(Path(result_json).read_text()).get("translation.identity")
    except (OSError, ValueError):  # a run folder moved or deleted since: the summary goes on without it
        return None


def translation_line(table: Any) -> str:
    """A warning naming the finished trials whose translator learned the identity ("" when none did):
    they adapted without translation, which a StarGAN sweep's space can reach (a weak lambda_cls or a strong lambda_rec)."""
    if "translator_identity" not in table:
        return ""
    done = table[table["finished"]]
    # str(): a Python or numpy bool, or the text trials.csv gives back; None and NaN are not "True"
    ids = list(done.loc[done["translator_identity"].map(lambda v: str(v) == "True"), "trial_id"])
    if not ids:
        return ""
    return (f"\nWARNING: the translator of {len(ids)} of the {len(done)} finished trials learned the identity "
            f"(S' = S; symda.translate.apply.IDENTITY_CHANGE): {', '.join(ids)}; they adapted without translation")  # fmt: skip


def rung_scores(histories: dict[str, Any]) -> tuple[int, Any]:
    """(rung, scores): the deepest progress every trial reported, and each trial's miou, miou_se and
    validator scores there (DataFrame indexed by trial id). ASHA stops most trials at its first rung, so the finished
    trials are few and pre-selected; at the rung all trials are measured alike, which is where a sweep
    shows whether its space matters more than the evaluation's noise."""
    import pandas as pd

    if not histories:
        return 0, pd.DataFrame(columns=["miou", "miou_se", *VALIDATORS])
    rung = int(min(h["progress"].max() for h in histories.values()))
    rows = {}
    for trial_id, h in histories.items():
        at = h[h["progress"] == rung]
        if len(at):
            last = at.iloc[-1]
            rows[trial_id] = {k: float(last.get(k, math.nan)) for k in ("miou", "miou_se", *VALIDATORS)}
    return rung, pd.DataFrame.from_dict(rows, orient="index", columns=["miou", "miou_se", *VALIDATORS])


def write_best_config(
    path: Path, base_config: str, overrides: dict[str, Any], params: dict[str, Any], name: str
) -> Path:
    """The best trial's whole config as YAML: base config + the user's fixed overrides (paths as the
    user gave them, so `symda run --config <it>` reproduces the trial from where the sweep ran) +
    the trial's params."""
    params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}  # numpy -> python
    return save_config(load_config(base_config, {**overrides, **params, "name": name}), path)


def summarize(
    exp_dir: Path,
    keys: list[str],
    select_by: str,
    base_config: str,
    overrides: dict[str, Any],
    dashboard: str = "",
    kind: str = "",
) -> SweepSummary:
    """Table of every trial of exp_dir (also written as trials.csv), how well each validator ranks the
    trials (finished ones, and all at the deepest common rung), and the best finished trial's config
    (best_config.yaml): the best by `select_by`, as the table is ordered."""
    table, histories = trials_table(exp_dir, keys, select_by)
    done = table[table["finished"]]
    correlations = {"miou_fused": spearman(done["miou_fused"], done["miou"])}
    spread = trial_spread(done)
    rung, at_rung = rung_scores(histories)
    validators = {
        name: {"rho": spearman(done[name], done["miou"]), "regret": regret(done[name], done["miou"]),
               "rho_rung": spearman(at_rung[name], at_rung["miou"]),
               "regret_rung": regret(at_rung[name], at_rung["miou"])}
        for name in VALIDATORS
    }  # fmt: skip
    best_config, params = None, None
    if len(done):
        best = done.iloc[0]
        params = {k: best[k] for k in keys if _is_set(best[k])}
        best_config = write_best_config(exp_dir / "best_config.yaml", base_config, overrides, params,
                                        name=f"{exp_dir.name}-best-{best['trial_id']}")  # fmt: skip
    table.to_csv(exp_dir / "trials.csv", index=False)
    return SweepSummary(exp_dir, table, select_by, correlations, validators, spread, trial_spread(at_rung),
                        len(done), best_config, exp_dir / "optuna.db", dashboard, rung, kind, params)  # fmt: skip


def study_expectations(path: Path | None = None) -> dict[str, dict[str, float]]:
    """{validator: {"rho", "regret1", ...}} pooled over the validator study's seeds ({} without the file)."""
    import json

    path = path or STUDY_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("pooled", {})


def selection_expectations(kind: str, path: Path | None = None) -> dict[str, Any]:
    """The selection study's figures for sweeps of `kind` ({} when it has none): {"winner",
    "goal_reached", "pooled": {validator: {"rho", "regret1", ...}}, "points", "seeds"}."""
    import json

    path = path or SELECTION_FILE
    if not kind or not path.is_file():
        return {}
    return json.loads(path.read_text()).get(kind, {})


def trust_line(select_by: str, kind: str, path: Path | None = None) -> str:
    """How far the selection study trusts `select_by` on sweeps of `kind`, and a warning when its rho
    among configurations there is below TRUSTED_RHO, or was never measured."""
    if select_by == "miou":
        return "selected by miou: the target labels, not a validator"
    found = selection_expectations(kind, path)
    figures = found.get("pooled", {}).get(select_by)
    if not figures or figures.get("rho") is None:
        return (f"WARNING: the selection study has no figure for {select_by} on {kind or 'this'} sweeps: "
                "its pick among these trials is unmeasured (docs/results/selection/)")  # fmt: skip
    rho, regret1 = figures["rho"], figures.get("regret1")
    line = (f"{select_by} on {kind} sweeps (selection study, configurations at equal progress, pooled over "
            f"{len(found.get('seeds', []))} seeds): rho {rho:+.2f}, top-1 regret "
            f"{'n/a' if regret1 is None else format(regret1, '.2f')} mIoU")  # fmt: skip
    same = found.get("reproducibility")
    if same is not None and same < 0.3:
        # No validator can rank configurations that differ by noise only: say so, not just "rho low".
        line += (f"\nthe study's {kind} configurations differ by no more than noise (their true mIoU ranks "
                 f"agree between seeds with rho {same:+.2f}): no validator ranks them, and what a pick loses "
                 f"is the top-1 regret above")  # fmt: skip
    if found.get("goal_reached") is False:
        # The study's goal, said plainly where no validator reaches it.
        line += (f"\nno validator reaches the selection study's goal on {kind} sweeps (rho >= {GOAL_RHO} and "
                 f"top-1 regret <= {GOAL_REGRET} mIoU); its best there is {found.get('winner')}")  # fmt: skip
    if rho < TRUSTED_RHO:
        best = found.get("winner")
        line += (f"\nWARNING: {select_by} ranks {kind} configurations poorly (rho {rho:+.2f} < {TRUSTED_RHO}): "
                 f"do not trust its pick" + (f"; the study's best here is {best}" if best and best != select_by else ""))  # fmt: skip
    return line


def range_line(select_by: str, kind: str, pick: dict[str, Any] | None, path: Path | None = None) -> str:
    """A warning when the pick sets a parameter outside the span the selection study scored `kind`'s
    configurations over (its "ranges"): the study's figure for `select_by` does not cover it ("" else).
    Why it matters: a source-risk validator such as source_miou prefers the policies that label least
    (they keep the most source accuracy), and a sweep can reach further than the study sampled."""
    if not pick or select_by == "miou":
        return ""
    ranges = selection_expectations(kind, path).get("ranges", {})
    outside = []
    for key, value in pick.items():
        value = value.item() if hasattr(value, "item") else value  # numpy scalars from the trials table
        if key in ranges and isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = ranges[key]
            if not lo <= float(value) <= hi:
                outside.append(f"{key} {float(value):.4g} (studied {lo:.4g} to {hi:.4g})")
    if not outside:
        return ""
    return (f"WARNING: the pick sets {', '.join(outside)}, outside the configurations the selection study "
            f"scored {select_by} on: its figure above does not cover this pick")  # fmt: skip


def trial_spread(done: Any) -> dict[str, float]:
    """How far apart trials are (rows with miou, miou_se), against the evaluation's own noise: min, max
    and std of their miou, and the median of their miou_se (bootstrap std over the val images). A
    sweep whose trials span less than about twice the noise cannot tell them apart."""
    miou = done["miou"].astype(float)
    return {
        "n": len(miou),
        "min": float(miou.min()) if len(miou) else math.nan,
        "max": float(miou.max()) if len(miou) else math.nan,
        "std": float(miou.std(ddof=1)) if len(miou) > 1 else math.nan,
        "noise": float(done["miou_se"].astype(float).median()) if len(miou) else math.nan,
    }


def spread_line(what: str, sp: dict[str, float]) -> str:
    """One line: the span of `what` against the evaluation noise, and the verdict (span > 2 x noise)."""
    if sp["n"] < 2:
        return f"{what}: too few to set against the evaluation noise (median bootstrap std {sp['noise']:.2f})"
    span = sp["max"] - sp["min"]
    verdict = (
        "noise unknown" if math.isnan(sp["noise"])
        else "the sweep can tell them apart" if span > 2 * sp["noise"]
        else "within the noise: the sweep cannot tell them apart"
    )  # fmt: skip
    return (f"{what}: miou spans {sp['min']:.2f} to {sp['max']:.2f} ({span:.2f}; std {sp['std']:.2f}); evaluation "
            f"noise (bootstrap std over val images, median) {sp['noise']:.2f}: {verdict}")  # fmt: skip


def validator_lines(s: SweepSummary) -> str:
    """How each validator would have chosen among this sweep's trials (Spearman rho with miou, and
    regret: best miou minus the miou of its pick), over the finished trials and over all trials at the
    deepest common rung, beside the validator study's pooled figures."""

    def num(x: float, fmt: str) -> str:
        return "n/a" if x is None or math.isnan(x) else format(x, fmt)

    study = study_expectations()
    n_rung = s.rung_spread["n"]
    w = max([len("validator"), *map(len, s.validators)])  # the names' column
    lines = ["\nchoosing without target labels (rho: Spearman with miou; regret: best miou minus its pick's; "
             "n/a: needs 3 trials with distinct scores):",
             f"  {'validator':{w}s} {f'{s.n_finished} finished':>18s} {f'{n_rung} at progress {s.rung}':>22s} "
             f"{'study (pooled)':>22s}",
             f"  {'':{w}s} {'rho':>8s} {'regret':>9s} {'rho':>11s} {'regret':>10s} {'rho':>11s} {'regret':>10s}"]  # fmt: skip
    for name, v in s.validators.items():
        mark = " <- selected by" if name == s.select_by else ""
        st = study.get(name, {})
        lines.append(f"  {name:{w}s} {num(v['rho'], '+.3f'):>8s} {num(v['regret'], '.2f'):>9s} "
                     f"{num(v['rho_rung'], '+.3f'):>11s} {num(v['regret_rung'], '.2f'):>10s} "
                     f"{num(st.get('rho', math.nan), '+.3f'):>11s} {num(st.get('regret1', math.nan), '.2f'):>10s}{mark}")  # fmt: skip
    if study.get(s.select_by, {}).get("regret1") is not None:
        lines.append(f"expected regret of picking by {s.select_by} (validator study, top-1, mean over its seeds): "
                     f"{study[s.select_by]['regret1']:.2f} mIoU")  # fmt: skip
    lines.append(trust_line(s.select_by, s.kind))
    if outside := range_line(s.select_by, s.kind, s.pick):
        lines.append(outside)
    return "\n".join(lines)


def start_line(table: Any) -> str:
    """The round-0 network every trial self-trains from, and how many finished trials end above it
    by more than the evaluation noise (their own miou_se), within it, or below it."""
    starts = table["start_miou"].dropna() if "start_miou" in table else []
    if len(starts) == 0:
        return "\nthe round-0 network's mIoU was not reported (no self-training, or an older run)"
    start, fused = float(starts.iloc[0]), float(table["start_miou_fused"].dropna().iloc[0])
    done = table[table["finished"] & table["gain"].notna()]
    above = int((done["gain"] > done["miou_se"]).sum())
    below = int((done["gain"] < -done["miou_se"]).sum())
    line = (f"\nthe adapted F_T every trial self-trains from (round 0): {start:.2f} mIoU ({fused:.2f} fused); "
            f"gain = a trial's mIoU minus it")  # fmt: skip
    if len(starts.unique()) > 1:
        line += f" (the trials start from {len(starts.unique())} different networks: gain is each one's own)"
    if len(done):
        line += (f"\nof the {len(done)} finished trials, {above} end above it by more than their evaluation noise, "
                 f"{below} below it, {len(done) - above - below} within the noise "
                 f"(gains {done['gain'].min():+.2f} to {done['gain'].max():+.2f})")  # fmt: skip
    return line


def _is_set(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def http(url: str) -> str:
    """Ray gives the dashboard as host:port; print it as a URL."""
    return url if not url or url.startswith("http") else f"http://{url}"


def print_summary(s: SweepSummary) -> None:
    """Print the table, errors, rank correlations, the best config and where everything is."""
    import pandas as pd

    table = s.table if (s.table["error"] != "").any() else s.table.drop(columns=["error"])
    table = table.drop(columns=["translator_identity"], errors="ignore")  # translation_line says it
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 70,
                           "display.float_format", "{:.4g}".format):  # fmt: skip
        print(f"\n== {len(table)} trials by {s.select_by}: finished, then stopped by ASHA, then errored ==")
        print(table.to_string(index=False))
    for _, row in s.table[s.table["status"] == "ERROR"].iterrows():
        print(f"errored {row['trial_id']}: {row['error']}")
    print(start_line(s.table))
    if line := translation_line(s.table):
        print(line)
    print(validator_lines(s))
    n_rung = s.rung_spread["n"]
    print(
        "\n"
        + spread_line(f"all {n_rung} trials at progress {s.rung} (the deepest all reached)", s.rung_spread)
    )
    print(spread_line(f"the {s.n_finished} finished trials", s.spread))
    unfinished = s.table[~s.table["status"].isin(["TERMINATED", "ERROR"])]
    if len(unfinished):
        print(
            f"\n{len(unfinished)} trials did not end (interrupted): finish the sweep with --resume --name {s.exp_dir.name}"
        )
    if s.best_config:
        print(
            f"\nbest config by {s.select_by}: {s.best_config}\n  rerun it: symda run --config {s.best_config}"
        )
    else:
        print("\nno trial finished: no best config")
    print(f"\nwritten to {s.exp_dir}/: trials.csv, best_config.yaml, sweep.json, runs/<trial id>/ (config.yaml,"
          f" result.json, pictures.md, tensorboard/), Tune's trial folders"
          f"\nevery trial's curves: tensorboard --host 127.0.0.1 --logdir {s.exp_dir / 'runs'}"
          f"\nthe Optuna study: optuna-dashboard --host 127.0.0.1 sqlite:///{s.optuna_db}")  # fmt: skip
