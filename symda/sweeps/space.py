"""Sweep search spaces: configs/sweeps/<name>.yaml -> a define-by-run function for Optuna.

A space file names the experiment it varies, what to build before the trials, the budget and the
parameters, each under its dotted config key (the same names as YAML configs, `--set` and results):

    config: configs/synthcity/quick.yaml    # base experiment (relative to the cwd or the repo root)
    upstream: adapt                          # stages built once before the trials: data | translate | adapt
    set: {model.aux_head: true}              # optional fixed overrides of the base config, for every trial
    num_samples: 8
    max_t: 150                               # ASHA, in self-training steps (the trials' "progress")
    grace_period: 50
    space:
      pseudo.threshold: {choice: [global, class_quantile]}
      pseudo.tau: {uniform: [0.5, 0.99], when: {pseudo.threshold: global}}

Distributions: uniform [low, high], loguniform [low, high], int [low, high] (inclusive), choice
[values]. `when: {key: value or [values]}` makes a parameter conditional on earlier ones: it is
sampled only when they hold; otherwise it is not set (None in the trial's config, never shown to
Optuna) and the base config's value stays.
Loading is strict: an unknown key, distribution or malformed entry raises ConfigError naming the
file and the key. Nothing here imports Ray or Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from symda.config import ConfigError, ExperimentConfig, flatten, load_config
from symda.config import YamlLoader as ConfigYamlLoader  # reads 1e-3 as a float, like config files

REPO_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ("data", "translate", "adapt")  # = symda.pipeline.UPSTREAM_STAGES (not imported: no torch here)
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
_TOP_KEYS = {
    "config": "base experiment config",
    "upstream": f"one of {list(UPSTREAM)}",
    "num_samples": "number of trials",
    "max_t": "ASHA's longest trial, in self-training steps",
    "grace_period": "ASHA's shortest trial, in self-training steps",
    "reduction_factor": "ASHA's halving rate (default 3)",
    "n_startup_trials": "random trials before TPE (default num_samples // 2)",
    "set": "fixed overrides of the base config {dotted.key: value}",
    "space": "the parameters",
    "select_by": "what the sweep selects by unless --select-by says (default: the base config's select.by)",
}


@dataclass(frozen=True)
class Param:
    """One swept parameter: dotted config key, distribution name, its arguments, and its condition."""

    key: str
    dist: str  # one of DISTRIBUTIONS
    args: tuple[Any, ...]  # (low, high) or the choices
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # ((key, allowed values), ...): all must hold

    def extremes(self) -> tuple[Any, ...]:
        """Values that bound what can be sampled (both ends, or every choice): checked before a sweep."""
        return self.args


@dataclass(frozen=True)
class SweepSpace:
    """A parsed space file."""

    path: Path
    config: Path  # the base experiment config, resolved
    upstream: str
    num_samples: int
    max_t: int
    grace_period: int
    reduction_factor: int
    n_startup_trials: int
    params: tuple[Param, ...]
    overrides: dict[str, Any]  # `set:` fixed overrides of the base config (before --set)
    select_by: str | None = None  # this sweep's own default (the selection study's pick for it)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]


def find_file(path: str | Path, what: str) -> Path:
    """`path` as given if it exists (absolute or relative to the cwd), else relative to the repo root."""
    p = Path(path)
    for candidate in (p, REPO_ROOT / p):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"{what} {str(path)!r}: file not found (looked in {Path.cwd()} and {REPO_ROOT})")


def _positive_int(data: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: {key}: expected a positive integer, got {value!r}")
    return value


def _parse_param(key: str, entry: Any, earlier: dict[str, Param], where: str, known: set[str]) -> Param:
    at = f"{where}: space.{key}"
    if key not in known:
        raise ConfigError(
            f"{at}: unknown config key (the keys are those of symda/config.py, e.g. pseudo.tau)"
        )
    if key.startswith("scale."):
        raise ConfigError(f"{at}: scale.* decides each trial's resources and cannot be swept")
    if not isinstance(entry, dict):
        raise ConfigError(f"{at}: expected a mapping such as {{uniform: [0.5, 0.9]}}, got {entry!r}")
    unknown = set(entry) - {*DISTRIBUTIONS, "when"}
    if unknown:
        raise ConfigError(
            f"{at}: unknown distribution {sorted(unknown)[0]!r} (expected one of {list(DISTRIBUTIONS)})"
        )
    dists = [d for d in DISTRIBUTIONS if d in entry]
    if len(dists) != 1:
        raise ConfigError(f"{at}: expected exactly one of {list(DISTRIBUTIONS)}, got {sorted(entry)}")
    dist, args = dists[0], entry[dists[0]]
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{at}: {dist}: expected a non-empty list, got {args!r}")
    if dist == "choice":
        if any(not isinstance(v, bool | int | float | str) for v in args):
            raise ConfigError(f"{at}: choice: values must be numbers, strings or booleans, got {args!r}")
    else:
        number = int if dist == "int" else int | float
        if len(args) != 2 or any(isinstance(v, bool) or not isinstance(v, number) for v in args):
            kind = "integers" if dist == "int" else "numbers"
            raise ConfigError(f"{at}: {dist}: expected [low, high] {kind}, got {args!r}")
        low, high = args
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"{at}: {dist}: expected finite low < high, got {args!r}")
        if dist == "loguniform" and low <= 0:
            raise ConfigError(f"{at}: loguniform: low must be > 0, got {low!r}")
    when = entry.get("when")
    if when is None:
        return Param(key, dist, tuple(args))
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{at}: when: expected a mapping {{earlier.key: value or [values]}}, got {when!r}")
    conditions = []
    for other, allowed in when.items():
        if other not in earlier:
            raise ConfigError(f"{at}: when: {other!r} is not a parameter listed before {key!r} in this space")
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        parent = earlier[other]
        if parent.dist == "choice" and not set(values) <= set(parent.args):
            raise ConfigError(
                f"{at}: when: {other} never takes {list(values)} (its choices: {list(parent.args)})"
            )
        conditions.append((other, values))
    return Param(key, dist, tuple(args), tuple(conditions))


def load_space(path: str | Path) -> SweepSpace:
    """Parse and check a space file (see the module docstring); raise ConfigError naming file and key."""
    path = find_file(path, "sweep space")
    where = str(path)
    try:
        data = yaml.load(path.read_text(), Loader=ConfigYamlLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {sorted(_TOP_KEYS)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{where}: {key}: unknown key (expected: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("config", "space", "max_t", "grace_period"):
        if key not in data:
            raise ConfigError(f"{where}: {key}: missing ({_TOP_KEYS[key]})")
    upstream = data.get("upstream", "adapt")
    if upstream not in UPSTREAM:
        raise ConfigError(f"{where}: upstream: {upstream!r} is not one of {list(UPSTREAM)}")
    if not isinstance(data["config"], str):
        raise ConfigError(f"{where}: config: expected a path, got {data['config']!r}")
    try:
        config = find_file(data["config"], "base config")
    except ConfigError as err:
        raise ConfigError(f"{where}: config: {err}") from None
    num_samples = _positive_int(data, "num_samples", where, default=8)
    max_t, grace = _positive_int(data, "max_t", where), _positive_int(data, "grace_period", where)
    if grace > max_t:
        raise ConfigError(f"{where}: grace_period: {grace} is longer than max_t {max_t}")
    reduction = _positive_int(data, "reduction_factor", where, default=3)
    if reduction < 2:
        raise ConfigError(f"{where}: reduction_factor: must be >= 2, got {reduction}")
    startup = _positive_int(data, "n_startup_trials", where, default=max(1, num_samples // 2))
    space = data["space"]
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: space: expected a mapping of dotted config keys to distributions")
    known = set(flatten(ExperimentConfig()))
    overrides = data.get("set") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: set: expected a mapping {{dotted.key: value}}, got {overrides!r}")
    for key in overrides:
        if key not in known:
            raise ConfigError(f"{where}: set.{key}: unknown config key")
    params: dict[str, Param] = {}
    for key, entry in space.items():
        params[key] = _parse_param(str(key), entry, params, where, known)
    select_by = data.get("select_by")
    if select_by is not None:
        from symda.select import check_name

        try:
            check_name(str(select_by), "select_by")
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    return SweepSpace(
        path,
        config,
        upstream,
        num_samples,
        max_t,
        grace,
        reduction,
        startup,
        tuple(params.values()),
        overrides,
        select_by,
    )


def check_space(space: SweepSpace, base_config: Path, overrides: dict[str, Any]) -> None:
    """Every end of every range and every choice must pass the config's own validation (types,
    bounds), so a bad space fails before any Ray or training start, naming the space file and key."""
    for p in space.params:
        for value in p.extremes():
            try:
                load_config(base_config, {**overrides, p.key: value})
            except ConfigError as err:
                raise ConfigError(
                    f"{space.path}: space.{p.key}: {p.dist} value {value!r} is invalid: {err}"
                ) from None


def active(param: Param, sampled: dict[str, Any]) -> bool:
    """Whether a conditional parameter is sampled, given the values sampled before it."""
    return all(key in sampled and sampled[key] in allowed for key, allowed in param.when)


def sample(trial: Any, params: tuple[Param, ...]) -> dict[str, Any]:
    """Sample the active parameters through an optuna Trial (define-by-run); return {key: value}."""
    out: dict[str, Any] = {}
    for p in params:
        if not active(p, out):
            continue  # inactive: not suggested at all, so TPE models it only where it matters
        if p.dist == "choice":
            out[p.key] = trial.suggest_categorical(p.key, list(p.args))
        elif p.dist == "int":
            out[p.key] = trial.suggest_int(p.key, p.args[0], p.args[1])
        else:
            out[p.key] = trial.suggest_float(p.key, p.args[0], p.args[1], log=p.dist == "loguniform")
    return out


class DefineByRun:
    """OptunaSearch(space=DefineByRun(params)): a class, not a closure, because Tune pickles the
    searcher (with its space) into the experiment's checkpoint so that `--resume` can restore it."""

    def __init__(self, params: tuple[Param, ...]) -> None:
        self.params = params

    def __call__(self, trial: Any) -> dict[str, None]:
        """Suggest the active parameters (OptunaSearch records the suggest_* calls); return the
        inactive ones as None: Optuna never sees them, while every trial's config holds every key
        (Tune's progress table looks each one up), None meaning "not set, the base config's value"."""
        sampled = sample(trial, self.params)
        return {p.key: None for p in self.params if p.key not in sampled}
