"""Result records: one flat JSON record per run (result.json), the unit every table is built from;
and `load_results`, which reads any mix of runs and sweeps into one pandas DataFrame.

Column names are the config's dotted keys (`config.train.lr` style is avoided: the key is exactly
`train.lr`), so YAML, sweeps and result columns say the same thing. `ablation_factors` names each
row's ablation setting from those config fields. Nothing here imports torch or needs Ray running.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

from symda.config import (
    MOVED_KEYS,
    ConfigError,
    ExperimentConfig,
    config_hash,
    flatten,
    load_config,
    moved,
)
from symda.io import write_json
from symda.select import VALIDATORS
from symda.select.stats import spearman  # noqa: F401  (re-exported: analysis scripts import it from here)
from symda.terms import TERMS

if TYPE_CHECKING:
    import pandas as pd

RECORD_VERSION = 1


def git_revision(cwd: Path | None = None) -> str:
    """The checkout's commit (with '-dirty' when it has uncommitted changes), or 'unknown'."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def make_record(cfg: ExperimentConfig, metrics: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """A flat record: identity, every config key (dotted), then the run's metrics with nested dicts as
    dotted keys (per-class IoU: `iou.<class>`; checkpoint choices: `selection.F_T_r1.entropy.step`)."""
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "run_id": run_id or uuid.uuid4().hex[:12],
        "config_hash": config_hash(cfg),
        "git_revision": git_revision(Path(__file__).parent),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    record.update(flatten(cfg))
    for key, value in metrics.items():
        if isinstance(value, dict):
            record.update(flatten_mapping(value, f"{key}."))
        else:
            record[key] = value
    return record


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    return write_json(Path(out_dir) / "result.json", record)


# ===================================================================================== loading results
#
# Everything below reads stored results into one pandas DataFrame, one row per run or Tune trial. It
# reads files only (no Ray cluster, no torch): analysis/ imports it.

CLASS_NAMES: tuple[str, ...] = tuple(
    lab.name for lab in sorted(_CITYSCAPES_LABELS, key=lambda lab: lab.trainId) if 0 <= lab.trainId < 255
)  # the 19 train classes in trainId order (road ... bicycle), as symda.data.labels (which imports torch)
IOU_COLUMNS = tuple(f"iou.{c}" for c in CLASS_NAMES)
IOU_FUSED_COLUMNS = tuple(f"iou_fused.{c}" for c in CLASS_NAMES)
ID_COLUMNS = ("run_id", "sweep", "trial_id", "kind", "status", "finished", "error", "name", "seed")
METRIC_COLUMNS = ("miou", "miou_se", "miou_fused", "miou_fused_se", *VALIDATORS,
                  *IOU_COLUMNS, *IOU_FUSED_COLUMNS)  # fmt: skip
# Validator scores under the names records before symda.select used (agreement and entropy were "proxies").
_OLD_METRIC_NAMES = {"proxy_agreement": "agreement", "proxy_entropy": "entropy"}
TAIL_COLUMNS = ("git_revision", "record_version", "source")
CONFIG_KEYS: tuple[str, ...] = tuple(flatten(ExperimentConfig()))
CONFIG_SECTIONS = frozenset(k.split(".")[0] for k in CONFIG_KEYS if "." in k)
FINISHED = "finished"  # status of a plain run that wrote its metrics (trials carry Tune's status)
# Metric names of `symda train` (metrics.json) -> the names of `symda run` records.
_TRAIN_METRICS = {"val_miou": "miou", "val_miou_se": "miou_se", "val_per_class_iou": "iou",
                  "train_seconds": "seconds.train"}  # fmt: skip
# Tune result names of sweep trials (symda.sweeps.trial.tune_result) -> record names.
_TUNE_METRICS = {
    "miou": "miou",
    "miou_se": "miou_se",
    "miou_fused": "miou_fused",
    "progress": "progress",
    **{name: name for name in VALIDATORS},
    "proxy": "agreement",
    "proxy_entropy": "entropy",
}  # fmt: skip  (the last two: older sweeps)


class ResultsError(ValueError):
    """A path that holds no results; the message names it."""


def load_results(*paths: str | Path) -> pd.DataFrame:
    """Every run and trial under `paths` as one tidy DataFrame, one row each.

    A path may be a run folder (result.json of `symda run`, or metrics.json + config.yaml of
    `symda train`), a result.json / metrics.json file, a sweep folder (Ray Tune's on-disk results:
    sweep.json, experiment_state-*.json or run_trial_*/ folders), one Tune trial folder, or any folder
    holding such things at any depth (hidden folders are skipped). Columns (see ID_COLUMNS ...):
    run_id, sweep (NaN for plain runs), trial_id, kind (train | run: which entry point wrote the
    record), status ("finished" for runs; Tune's TERMINATED / ERROR / RUNNING / PENDING for trials;
    "unfinished" for a run folder without metrics), finished (the run wrote its final metrics), error,
    every config key with its dotted name, miou, miou_se (bootstrap std over val images), miou_fused,
    miou_fused_se, every validator by name (symda.select.VALIDATORS; older records' proxy_agreement and
    proxy_entropy are agreement and entropy), selection.<stage>.<validator>.step / .miou (which
    evaluation each validator would pick),
    iou.<class>, iou_fused.<class>, pseudo_r<round>.<stat>, seconds.<stage>, peak_mb.<stage>, artifacts.<stage>,
    git_revision, record_version, source (the file or folder the row was read from). A record of an
    older version lacks some of these: they are NaN. List values (sizes) become tuples, so every
    column can be grouped on.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for given in map(Path, paths):
        if not given.exists():
            raise ResultsError(f"{given}: no such file or folder")
        rows.extend(_rows_under(given.resolve()))  # absolute sources: one run, one row, however reached
    frame = pd.DataFrame([_current_names(row) for row in rows])
    for col in (*ID_COLUMNS, *METRIC_COLUMNS, *TAIL_COLUMNS):
        if col not in frame.columns:
            frame[col] = math.nan
    if len(frame):  # the same run reached through two of the paths counts once
        frame = frame.drop_duplicates(subset="source").reset_index(drop=True)
    return frame[_column_order(list(frame.columns))]


def _current_names(row: dict[str, Any]) -> dict[str, Any]:
    """A row with the config keys that moved (symda.config.MOVED_KEYS) and the metrics that were
    renamed under their new names, and swept_keys naming them so: records written before a move load
    like the ones after it."""
    out = dict(moved(_OLD_METRIC_NAMES.get(k, k), v) for k, v in row.items())
    if isinstance(out.get("swept_keys"), str):
        out["swept_keys"] = ",".join(MOVED_KEYS.get(k, k) for k in out["swept_keys"].split(",") if k)
    return out


def _column_order(columns: list[str]) -> list[str]:
    """Identity, metrics (per class in the field's order), per-round and per-stage statistics, the
    config keys, artifact keys, then provenance."""
    fixed = [*ID_COLUMNS, *METRIC_COLUMNS]
    rest = [c for c in columns if c not in fixed and c not in TAIL_COLUMNS]
    stats = sorted(c for c in rest if c.startswith(("pseudo_r", "seconds.", "peak_mb.")))
    config = [c for c in rest if c in CONFIG_KEYS or c.split(".")[0] in CONFIG_SECTIONS]
    artifacts = [c for c in rest if c.startswith("artifacts.")]
    other = [c for c in rest if c not in {*stats, *config, *artifacts}]
    return [*fixed, *other, *stats, *config, *artifacts, *TAIL_COLUMNS]


# --------------------------------------------------------------------------------------- discovery


def is_sweep_dir(path: Path) -> bool:
    """A Ray Tune experiment folder (a symda sweep, or any Tuner's)."""
    return (
        (path / "sweep.json").is_file()
        or any(path.glob("experiment_state-*.json"))
        or any(_is_trial_dir(p) for p in path.glob("*/"))
    )


def _is_trial_dir(path: Path) -> bool:
    return path.is_dir() and (path / "params.json").is_file()


def _is_run_dir(path: Path) -> bool:
    return any((path / f).is_file() for f in ("result.json", "metrics.json", "config.yaml"))


def _rows_under(path: Path) -> list[dict[str, Any]]:
    if path.is_file():
        if path.name in ("result.json", "metrics.json"):
            if _is_trial_dir(path.parent):  # Tune's own result.json: JSON lines of one trial
                return _rows_under(path.parent)
            return [run_row(path.parent)]
        raise ResultsError(f"{path}: expected a result.json, a metrics.json or a folder of results")
    if _is_trial_dir(path):
        return sweep_rows(path.parent, only=path)
    if is_sweep_dir(path):
        return sweep_rows(path)
    if _is_run_dir(path):
        return [run_row(path)]
    rows = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            rows.extend(_rows_under(child))
    return rows


# ------------------------------------------------------------------------------------------ one run


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run folder as a flat row: its result.json record (also of a `symda run` killed before its
    last file, metrics.json: the record is whole), or (`symda train`, or a `symda run` of an earlier version
    stopped before its record) metrics.json + config.yaml, or only config.yaml (status "unfinished").
    An unreadable file gives a row with status "unreadable" and the reason in `error`."""
    record, metrics, config = run_dir / "result.json", run_dir / "metrics.json", run_dir / "config.yaml"
    row: dict[str, Any] = {"run_id": run_dir.name, "status": FINISHED, "finished": True}
    try:
        if record.is_file():
            row.update({k: _plain(v) for k, v in _read_json(record).items()}, kind="run", source=str(record))
            return row
        if config.is_file():
            row.update(flatten_mapping(_read_yaml(config)))
        if metrics.is_file():
            data = _read_json(metrics)
            row.update(flatten_metrics(data), source=str(metrics))
            row["kind"] = "train" if "val_miou" in data else "run"
            return row
    except ResultsError as err:
        warnings.warn(str(err), stacklevel=2)
        return {"run_id": run_dir.name, "status": "unreadable", "finished": False, "error": str(err),
                "source": str(run_dir)}  # fmt: skip
    row.update(status="unfinished", finished=False, source=str(config))
    return row


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json as record columns: nested dicts become dotted keys (make_record's rule);
    `symda train`'s names become the record's (val_miou -> miou, val_per_class_iou -> iou.<class>)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        key = _TRAIN_METRICS.get(key, key)
        if isinstance(value, dict):
            out.update(flatten_mapping(value, f"{key}."))
        else:
            out[key] = _plain(value)
    return out


def flatten_mapping(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping (config.yaml) as {dotted key: value}, the names `flatten` gives a config."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten_mapping(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """Lists (sizes, dilations) as tuples, so that pandas can group and compare them."""
    return tuple(_plain(v) for v in value) if isinstance(value, list) else value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(f"{path}: not readable as JSON ({err})") from err


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ResultsError(f"{path}: not readable as YAML ({err})") from err
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a mapping of config sections")
    return data


# ------------------------------------------------------------------------------------ Tune sweeps


def sweep_rows(exp_dir: Path, only: Path | None = None) -> list[dict[str, Any]]:
    """One row per trial of a Tune experiment folder (all of them, or the one trial folder `only`).

    A trial's columns come from, in order of trust: its run record (exp_dir/runs/<trial id>/, or the
    result_json its last Tune result names), that run folder's config.yaml, the sweep's base config +
    fixed overrides + the trial's params (sweep.json), and at least its params.json. Metrics missing
    from the record (a trial that ASHA stopped or that failed) come from its last Tune result. The
    status and error come from Tune's experiment state; without one they are inferred from the
    trial folder. A trial the state knows but that never started (PENDING) still gets a row.
    """
    settings: dict[str, Any] = {}
    if (exp_dir / "sweep.json").is_file():
        try:
            settings = _read_json(exp_dir / "sweep.json")
        except ResultsError as err:
            warnings.warn(f"{err}; trials get their params only", stacklevel=2)
    states = tune_trial_states(exp_dir)
    dirs = {_trial_id(d, states): d for d in sorted(exp_dir.iterdir()) if _is_trial_dir(d)}
    if only is not None:
        ids = [t for t, d in dirs.items() if d == only]
    else:
        ids = [*states, *(t for t in dirs if t not in states)]  # Tune's order, then folders it never saved
    return [trial_row(exp_dir, t, dirs.get(t), states.get(t, {}), settings) for t in ids]


def tune_trial_states(exp_dir: Path) -> dict[str, dict[str, Any]]:
    """{trial id: status, config, last_result, error_file, logdir, trainable} from the newest
    experiment_state-*.json (Tune's own snapshot); {} when there is none or it cannot be read."""
    files = sorted(exp_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    try:
        out = {}
        for meta_json, runtime_json in json.loads(files[-1].read_text())["trial_data"]:
            meta, runtime = json.loads(meta_json), json.loads(runtime_json)
            error = runtime.get("error_filename") or runtime.get("pickled_error_filename")
            out[meta["trial_id"]] = {
                "status": meta.get("status"),
                "config": meta.get("config") or {},
                "last_result": runtime.get("last_result") or {},
                "error_file": error,
                "logdir": meta.get("relative_logdir"),
                "trainable": meta.get("trainable_name"),
            }
        return out
    except (OSError, ValueError, KeyError, TypeError) as err:  # another Ray version's layout
        warnings.warn(
            f"{files[-1]}: unreadable Tune experiment state ({err}); statuses are inferred", stacklevel=2
        )
        return {}


def _trial_id(trial_dir: Path, states: dict[str, dict[str, Any]]) -> str:
    """The trial id of a Tune trial folder: from the experiment state, its results, or its name
    (<trainable>_<id>_<index>_<params>_<date>; ids are 8 hex digits, or 5 + _<5 digits> in grids)."""
    for trial_id, state in states.items():
        if state.get("logdir") == trial_dir.name:
            return trial_id
    last = _last_result(trial_dir / "result.json")
    if last.get("trial_id"):
        return str(last["trial_id"])
    match = re.search(r"_([0-9a-f]{5}_\d{5}|[0-9a-f]{8})_\d+_", trial_dir.name)
    return match[1] if match else trial_dir.name


def _last_result(path: Path) -> dict[str, Any]:
    """The last complete line of a Tune result.json (JSON lines; a running trial may be mid-line)."""
    if not path.is_file():
        return {}
    for line in reversed(path.read_text(errors="replace").splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict):
            return result
    return {}


def trial_row(
    exp_dir: Path, trial_id: str, trial_dir: Path | None, state: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """One Tune trial as a row; see `sweep_rows` for where each column comes from."""
    params = _read_json(trial_dir / "params.json") if trial_dir else dict(state.get("config", {}))
    last = (_last_result(trial_dir / "result.json") if trial_dir else {}) or state.get("last_result", {})
    run_dir = exp_dir / "runs" / trial_id
    if not _is_run_dir(run_dir) and last.get("result_json"):
        run_dir = Path(last["result_json"]).parent
    row: dict[str, Any] = {}
    if _is_run_dir(run_dir):
        row.update(run_row(run_dir))
    else:
        row.update(_sweep_config(settings, params, trial_id))
    row.update({k: _plain(v) for k, v in params.items() if v is not None})  # None: inactive parameter
    for tune_key, column in _TUNE_METRICS.items():
        if tune_key in last and _missing(row.get(column)):
            row[column] = last[tune_key]
    status = state.get("status") or _inferred_status(trial_dir, last)
    row.update(
        run_id=trial_id,
        sweep=exp_dir.name,
        trial_id=trial_id,
        kind=row.get("kind", "run" if state.get("trainable", "run_trial") == "run_trial" else math.nan),
        status=status,
        finished=row.get("finished") is True or bool(last.get("finished")),
        error=_trial_error(trial_dir, state.get("error_file")) if status == "ERROR" else math.nan,
        swept_keys=",".join(k for k, v in params.items() if v is not None),  # the active ones
        source=str(trial_dir) if trial_dir else f"{exp_dir}#{trial_id}",
    )
    return row


def _sweep_config(settings: dict[str, Any], params: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """The trial's whole config rebuilt as symda.sweeps.trial.trial_config does (base config + fixed
    overrides + params), when sweep.json names a base config that still exists; else {}."""
    base = settings.get("base_config")
    if not base or not Path(base).is_file():
        return {}
    overrides = {**settings.get("overrides", {}), **settings.get("paths", {})}
    active = {k: v for k, v in params.items() if v is not None}
    try:
        cfg = load_config(base, {**overrides, **active, "name": trial_id}, legacy=True)
    except ConfigError as err:
        warnings.warn(f"trial {trial_id}: its config cannot be rebuilt ({err})", stacklevel=2)
        return {}
    return {k: _plain(list(v)) if isinstance(v, tuple) else v for k, v in flatten(cfg).items()}


def _inferred_status(trial_dir: Path | None, last: dict[str, Any]) -> str:
    if trial_dir is not None and any((trial_dir / f).is_file() for f in ("error.txt", "error.pkl")):
        return "ERROR"
    if last.get("done") or last.get("finished"):
        return "TERMINATED"
    return "UNKNOWN"  # no experiment state to say whether it runs, was stopped or was interrupted


def _trial_error(trial_dir: Path | None, error_file: str | None) -> str:
    """The exception line of the trial's error.txt (as the sweep summary prints it)."""
    if trial_dir is None:
        return "unknown error (no trial folder)"
    message = error_line(trial_dir, str(trial_dir / error_file) if error_file else None)
    if message == "unknown error" and (trial_dir / "error.pkl").is_file():
        return f"unknown error (only {trial_dir / 'error.pkl'}, a pickled exception, holds it)"
    return message


def error_line(trial_dir: Path, error_file: str | None) -> str:
    """The exception line ("FloatingPointError: non-finite training loss ...") of a trial's error.txt."""
    for path in (trial_dir / "error.txt", Path(error_file) if error_file else None):
        if path is not None and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            return lines[-1] if lines else "unknown error"
    return "unknown error"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ------------------------------------------------------------------------------------ ablation rows

# The deck's experiment table, in ladder order (each row adds one thing to a row above it). A row that
# adapts with one loss term alone, without translation or pseudo labels, is named after the published
# method that term stands for ("AdaptSegNet-like", "AdvEnt-like": symda.terms, AdaptationTerm.method);
# those rows follow source-only, in the terms' order.
OUTPUT_ADVERSARIAL = "adversarial"  # the output-space term: the seed's method and its prior rows use it


def single_term_row(term: str) -> str:
    """The ladder name of adapting with the adaptation term `term` alone (no translation, no pseudo labels)."""
    return f"{TERMS[term].method}-like"


SOURCE_ONLY, TRANSLATION, ADAPTSEGNET, CYCADA = (
    "source only",
    "+ translation",
    single_term_row(OUTPUT_ADVERSARIAL),
    "CyCADA-like",
)
BDL, SYMMETRIC_PROB, OURS, ORACLE = "BDL-like", "symmetric, prob-only pseudo labels", "ours", "oracle"
OURS_SINGLE, OURS_FUSION = "ours single", "ours fusion"
LADDER = (
    SOURCE_ONLY,
    ADAPTSEGNET,
    *(single_term_row(t) for t in TERMS if t != OUTPUT_ADVERSARIAL),
    TRANSLATION,
    CYCADA,
    BDL,
    SYMMETRIC_PROB,
    OURS_SINGLE,
    OURS_FUSION,
    ORACLE,
)
BDL_THRESHOLD = "class_quantile q=0.5 cap=0.9"  # BDL's recipe: per-class median, capped at 0.9
FACTOR_COLUMNS = ("oracle", "translation", "terms", "symmetric", "pseudo_labels", "consistency",
                  "threshold", "setting")  # fmt: skip


def ablation_factors(frame: pd.DataFrame) -> pd.DataFrame:
    """The ablation factors of each row, read from its config fields (never from its name):

    oracle (data.source is the target's cityscapes), translation (translate.enabled; the oracle is
    never translated), terms (the adaptation loss terms the row switches on, "+"-joined in the terms'
    order: "adversarial", "entropy+entropy_adversarial"; symda.terms), symmetric (adapt.symmetric:
    F_S too), pseudo_labels (self_train.enabled), consistency (pseudo.consistency; "none" on a single
    path, where M_conf = M_prob), threshold ("global tau=..." or "class_quantile q=... cap=..."), and
    setting, the deck's row name (LADDER; the full method is "ours"), or a plain description for
    other mixes. A `symda train` run (kind "train") adapts nothing: only translation and oracle apply
    to it, and translation only when its record names the translated source it trained on
    (artifacts.translated_source): older `symda train` ignored translate.enabled. A config key missing
    from an older record counts as its current default (symda.config; records before the terms had
    sections are read under today's names).
    """
    import pandas as pd

    defaults = flatten(ExperimentConfig())

    def col(key: str) -> pd.Series:
        values = col_or_nan(frame, key)
        return values.astype(object).where(values.notna(), defaults[key])

    adapted = frame["kind"] != "train"
    # `symda train` records which translated source it trained on; before it could translate (older
    # metrics.json), its config already said translate.enabled: true, and it trained on S all the same.
    trained_on_translated = col_or_nan(frame, "artifacts.translated_source").notna()
    oracle = col("data.source") == "cityscapes"
    pseudo = adapted & col("self_train.enabled").astype(bool)
    symmetric = adapted & col("adapt.symmetric").astype(bool)
    on = {
        name: adapted & (col(f"adapt.{name}.{term.switch}").astype(float) > 0) for name, term in TERMS.items()
    }
    terms = ["+".join(name for name in TERMS if on[name][i]) for i in frame.index]
    out = pd.DataFrame(
        {
            "oracle": oracle,
            "translation": col("translate.enabled").astype(bool)
            & ~oracle
            & (adapted | trained_on_translated),
            "terms": pd.Series(terms, index=frame.index, dtype=object),
            "symmetric": symmetric,
            "pseudo_labels": pseudo,
            "consistency": col("pseudo.consistency").where(pseudo & symmetric, "none").where(pseudo, ""),
        },
        index=frame.index,
    )
    policy = [
        f"global tau={tau:g}" if kind == "global" else f"class_quantile q={q:g} cap={cap:g}"
        for kind, tau, q, cap in zip(
            col("pseudo.threshold"), col("pseudo.tau"), col("pseudo.quantile"), col("pseudo.cap"), strict=True
        )
    ]
    out["threshold"] = pd.Series(policy, index=frame.index).where(pseudo, "")
    out["setting"] = [
        setting_name(adapted=a, **f) for a, f in zip(adapted, out.to_dict("records"), strict=True)
    ]
    return out


def col_or_nan(frame: pd.DataFrame, key: str) -> pd.Series:
    """frame[key], or NaN in every row when no loaded record has that column."""
    import pandas as pd

    if key in frame.columns:
        return frame[key]
    return pd.Series(math.nan, index=frame.index, dtype=object)


def setting_name(
    *,
    adapted: bool,
    oracle: bool,
    translation: bool,
    terms: str,
    symmetric: bool,
    pseudo_labels: bool,
    consistency: str,
    threshold: str,
) -> str:
    """The deck's name of one combination of ablation factors (see `ablation_factors`)."""
    if oracle:
        return ORACLE
    if not adapted:
        return TRANSLATION if translation else SOURCE_ONLY
    if terms in TERMS and not symmetric and not pseudo_labels:
        if not translation:
            return single_term_row(terms)
        if terms == OUTPUT_ADVERSARIAL:
            return CYCADA
    if terms == OUTPUT_ADVERSARIAL and translation and pseudo_labels:
        if not symmetric and threshold == BDL_THRESHOLD:
            return BDL
        if symmetric:
            return {"none": SYMMETRIC_PROB, "soft": OURS}.get(
                consistency, f"{OURS}, {consistency} consistency"
            )
    parts = [p for p, on in (("translation", translation), ("symmetric", symmetric)) if on]
    parts += [name.replace("_", " ") for name in terms.split("+") if name]
    if pseudo_labels:
        parts.append(f"pseudo labels ({consistency} consistency, {threshold})")
    return "adapted: " + (" + ".join(parts) or "no adaptation term")
