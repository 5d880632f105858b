"""Stage keys (symda.stage_keys): every config field is decided for every stage, exactly the KEY fields
move a stage's key, and the keys of stores built by symda 0.1 are unchanged."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from symda.artifacts import artifact_key
from symda.config import ExperimentConfig, flatten, load_config
from symda.stage_keys import (
    FIELDS,
    KEY,
    network_tag,
    parse_network_tag,
    pseudo_key,
    segmenter_key,
    translated_key,
    translator_key,
)

ALL_FIELDS = tuple(flatten(ExperimentConfig()))


def key_configs(cfg: ExperimentConfig) -> dict[str, dict[str, typing.Any]]:
    """Every stage's key config in every context that can tell fields apart (paths, rounds)."""
    return {
        "translator": {"": translator_key(cfg)},
        "translated": {w: translated_key(cfg, w) for w in ("source", "target", "val")},
        "segmenter": {f"{p}{r}": segmenter_key(cfg, p, r) for p in "TS" for r in (0, 1)},
        "pseudo": {"1": pseudo_key(cfg, 1)},
    }


def classification(stage: str, dotted: str) -> str | None:
    """The field's entry for `stage`: its own, or its section's `section.*`; None when it has neither."""
    table = FIELDS[stage]
    section = dotted.split(".")[0] if "." in dotted else None
    return table.get(dotted, table.get(f"{section}.*") if section else None)


def unclassified(stage: str, fields: typing.Iterable[str]) -> list[str]:
    return [f for f in fields if classification(stage, f) is None]


@pytest.mark.parametrize("stage", sorted(FIELDS))
def test_every_config_field_is_decided_for_every_stage(stage):
    missing = unclassified(stage, ALL_FIELDS)
    assert not missing, (
        f"{stage}: {missing} are neither KEY nor left out with a reason in symda/stage_keys.py FIELDS"
    )
    sections = {f.split(".")[0] for f in ALL_FIELDS if "." in f}
    stale = [k for k in FIELDS[stage] if k not in ALL_FIELDS and k.removesuffix(".*") not in sections]
    assert not stale, f"{stage}: FIELDS names fields that do not exist: {stale}"
    # A whole section may be left out with a reason, never put into the key wholesale: a new field of a
    # section that a stage reads must be decided one by one.
    assert all(v != KEY for k, v in FIELDS[stage].items() if k.endswith(".*"))
    assert all(isinstance(v, str) and v for v in FIELDS[stage].values())


def test_a_new_field_that_nobody_decided_fails_the_coverage_check():
    @dataclasses.dataclass
    class TrainWithDummy(type(ExperimentConfig().train)):
        dummy: int = 0

    cfg = dataclasses.replace(ExperimentConfig(), train=TrainWithDummy())
    assert unclassified("segmenter", flatten(cfg)) == ["train.dummy"]
    assert unclassified("translator", flatten(cfg)) == []  # the translator leaves train.* out wholesale


def changed(value: typing.Any, hint: typing.Any) -> typing.Any:
    """Another value of the same type (no validation: key configs only read values)."""
    if value is None:
        return (8, 16)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, tuple):
        return tuple(v + 1 for v in value)
    raise AssertionError(f"no change rule for {value!r} ({hint})")


def with_changed(cfg: typing.Any, dotted: str) -> typing.Any:
    """A copy of a config (or section) with the field at `dotted` (any depth) changed."""
    head, _, rest = dotted.partition(".")
    value = getattr(cfg, head)
    return dataclasses.replace(cfg, **{head: with_changed(value, rest) if rest else changed(value, None)})


BASES = {
    "SynthCity roots": {},
    "explicit roots, self-training steps": {"data.source_root": "/d/gta5", "data.target_root": "/d/cs",
                                            "self_train.steps": 7},
    "keeping checkpoints": {"select.keep_checkpoints": True},
}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(FIELDS))
def test_exactly_the_key_fields_change_a_stages_key(stage):
    """Change each field alone: a KEY field changes the stage's key config in some context (path, round,
    with or without SynthCity), every other field in none."""
    moved = {f: False for f in ALL_FIELDS}
    for overrides in BASES.values():
        base = load_config(overrides=overrides)
        before = key_configs(base)[stage]
        for dotted in ALL_FIELDS:
            after = key_configs(with_changed(base, dotted))[stage]
            moved[dotted] |= any(
                artifact_key(stage, after[c]) != artifact_key(stage, before[c]) for c in before
            )
    wrong_in = [f for f in ALL_FIELDS if moved[f] and classification(stage, f) != KEY]
    wrong_out = [f for f in ALL_FIELDS if not moved[f] and classification(stage, f) == KEY]
    assert not wrong_in, f"{stage}: these change the key but FIELDS leaves them out: {wrong_in}"
    assert not wrong_out, f"{stage}: FIELDS says KEY but the key config ignores them: {wrong_out}"


# Keys computed by symda 0.1 (before stage_keys.py) for these configs: stores built then stay valid.
# symda 0.1 had only the published generator: translate.residual false.
LEGACY = [
    ({"data.source_root": "/data/gta5", "data.target_root": "/data/cityscapes", "translate.residual": False},
     {"translator": "2b611bb4b0625bcd", "translated_val": "82659815357d79ab", "segmenter_T r0": "ad29d8fd9e47ab77",
      "segmenter_S r0": "88c294299a004754", "segmenter_T r1": "e3ce80f1b99e8b4e", "pseudo r1": "0a36e7b31d9e0243"}),
    ({"synth.root": "/data/synthcity", "synth.preset": "v1", "translate.residual": False},
     {"translator": "5f3614a46485c9b2", "translated_val": "88326f905e2218a3", "segmenter_T r0": "0eea05eed7e975d3",
      "segmenter_S r0": "bc657f825e516991", "segmenter_T r1": "ce974e534f986524", "pseudo r1": "7ee16ee6725ba165"}),
    # symda 0.1 spelled these pseudo.self_train_steps and adapt.pseudo_weight; its translator key
    # ignored scale.precision (a bf16 translator was reused by fp32 runs), which is mended.
    ({"synth.root": "/data/synthcity", "synth.preset": "v1", "self_train.steps": 150, "self_train.pseudo_weight": 0.5,
      "scale.precision": "bf16", "data.crop_size": [32, 64], "translate.residual": False},
     {"translated_val": "88326f905e2218a3", "segmenter_T r0": "61872e1f8ce736d1", "segmenter_S r0": "6a58bc72a27d5c79",
      "segmenter_T r1": "d8081776dcf22320", "pseudo r1": "7ee16ee6725ba165"}),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), LEGACY)
def test_keys_of_stores_built_by_symda_0_1_are_unchanged(overrides, expected):
    cfg = load_config(overrides=overrides)
    keys = {
        "translator": artifact_key("translator", translator_key(cfg)),
        "translated_val": artifact_key("translated_val", translated_key(cfg, "val")),
        **{
            f"segmenter_{p} r{r}": artifact_key(f"segmenter_{p}", segmenter_key(cfg, p, r))
            for p, r in (("T", 0), ("S", 0), ("T", 1))
        },  # fmt: skip
        "pseudo r1": artifact_key("pseudo", pseudo_key(cfg, 1)),
    }
    assert {k: keys[k] for k in expected} == expected
    if cfg.scale.precision != "fp32":
        assert keys["translator"] != LEGACY[1][1]["translator"]
    residual = load_config(overrides={**overrides, "translate.residual": True})
    assert artifact_key("translator", translator_key(residual)) != keys["translator"]


def test_the_synthcity_preset_and_gap_are_part_of_the_data_key():
    v1 = translator_key(load_config(overrides={"synth.preset": "v1"}))
    v2 = translator_key(load_config())
    weaker = translator_key(load_config(overrides={"synth.gap.texture": 0.5}))
    assert "gap" not in v1["data"]["synth"] and v2["data"]["synth"]["preset"] == "v2"
    assert len({artifact_key("translator", k) for k in (v1, v2, weaker)}) == 3


def test_network_tags_round_trip():
    assert network_tag("T", 2) == "adapt_T_r2"
    assert parse_network_tag(network_tag("S", 0)) == ("S", 0)
    assert parse_network_tag("translate") is None and parse_network_tag("adapt_X_r1") is None
