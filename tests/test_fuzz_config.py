"""Property-based fuzzing of the config (hypothesis): every field of every config section, given values
of the wrong type, out of range, non-finite, empty or huge, through a YAML file and through --set;
unknown keys; YAML documents of the wrong shape. Each one either loads or ends in a ConfigError that
names the key at fault (or the file): no other exception, ever.

The suite's profile keeps this to seconds (derandomized: the same cases every run); the benchmark
(bench/bench_fuzz.py) runs the "long" profile: HYPOTHESIS_PROFILE=long."""

from __future__ import annotations

import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symda.config import ConfigError, ExperimentConfig, describe_keys, load_config

settings.register_profile("suite", max_examples=150, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("SYMDA_FUZZ_EXAMPLES", 5000)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

KEYS = [k.key for k in describe_keys()]
SECTIONS = sorted({k.split(".")[0] for k in KEYS if "." in k})

# Values of every shape a hand-written YAML file or a --set can carry: the right type and the wrong
# ones, out of range, non-finite, empty, huge, nested.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, float("nan"), float("inf"), -float("inf"), 0.5, 1.5]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "none", "null", "auto", "T", "S", "~", "[", "{", ":", "1e-3", "0x10", "yes"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def loads_or_names(call, *names: str) -> None:
    """call() returns an ExperimentConfig, or raises ConfigError whose message holds one of `names`."""
    try:
        cfg = call()
    except ConfigError as err:
        assert any(n in str(err) for n in names), f"{err!r} names none of {names}"
        return
    assert isinstance(cfg, ExperimentConfig)


def accepted_values_are_finite(cfg: ExperimentConfig) -> None:
    from symda.config import flatten

    for key, value in flatten(cfg).items():
        assert not (isinstance(value, float) and not math.isfinite(value)), (key, value)


@given(key=st.sampled_from(KEYS), value=values)
def test_every_key_with_any_value_loads_or_names_the_key(key, value, tmp_path_factory):
    """One field of one section, any value: through --set and through a YAML file."""
    loads_or_names(lambda: load_config(overrides={key: value}), key)
    try:
        text = yaml.safe_dump(value)
    except yaml.YAMLError:
        return
    loads_or_names(lambda: load_config(overrides=[f"{key}={text.strip()}"]), key, "--set", "override")
    section, *rest = key.split(".")
    doc = {section: {".".join(rest): value}} if rest else {section: value}
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(_nest(doc)))
    loads_or_names(lambda: load_config(path), str(path))


def _nest(doc: dict) -> dict:
    """{"adapt": {"adversarial.lambda_main": v}} -> {"adapt": {"adversarial": {"lambda_main": v}}}."""
    out: dict = {}
    for section, inner in doc.items():
        if not isinstance(inner, dict):
            out[section] = inner
            continue
        node = out.setdefault(section, {})
        for dotted, v in inner.items():
            parts = dotted.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = v
    return out


@given(key=st.sampled_from(KEYS), value=values)
def test_accepted_values_are_finite(key, value):
    """What loads holds no NaN or infinity anywhere (a non-finite rate trains nothing, silently)."""
    try:
        cfg = load_config(overrides={key: value})
    except ConfigError:
        return
    accepted_values_are_finite(cfg)


@given(
    key=st.one_of(
        st.text(
            st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="._-"),
            min_size=1,
            max_size=20,
        ),
        st.builds(
            lambda s, k: f"{s}.{k}", st.sampled_from(SECTIONS), st.text("abcxyz_", min_size=1, max_size=8)
        ),
    ),
    value=scalars,
)
def test_unknown_keys_are_named(key, value):
    if key in KEYS:
        return
    loads_or_names(lambda: load_config(overrides={key: value}), key.split(".")[0], key)


documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(SECTIONS + ["name", "seed"]), st.text(max_size=5)), inner, max_size=3
        ),  # fmt: skip
    ),
    max_leaves=10,
)


@given(doc=documents)
def test_yaml_documents_of_any_shape_load_or_name_the_file(doc, tmp_path_factory):
    path = tmp_path_factory.mktemp("doc") / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    loads_or_names(lambda: load_config(path), str(path))


@given(text=st.one_of(st.text(max_size=80), st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
def test_any_text_as_a_config_file_loads_or_names_the_file(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("txt") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    loads_or_names(lambda: load_config(path), str(path))


@pytest.mark.parametrize("text", ["seed: !!python/object/apply:os.system ['touch PWNED']", "a: &x [*x]"])
def test_yaml_that_would_run_code_or_recurse_is_refused(text, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    loads_or_names(lambda: load_config(path), str(path))
    assert not (tmp_path / "PWNED").exists()


BAD = [None, True, -1, 0, 2**63, -(2**63), 1e300, float("nan"), float("inf"), -float("inf"), "", "x" * 5000,
       "[", [], [1, "a", None], {}, {"a": 1}]  # fmt: skip


@pytest.mark.parametrize("key", KEYS)
def test_every_key_with_every_kind_of_bad_value(key):
    """All keys, each with every kind of wrong value (the exhaustive floor under the random search)."""
    for value in BAD:
        loads_or_names(lambda value=value: load_config(overrides={key: value}), key)
        text = yaml.safe_dump(value, width=10**6).strip().removesuffix("...").strip()
        loads_or_names(lambda text=text: load_config(overrides=[f"{key}={text}"]), key, "--set", "override")
