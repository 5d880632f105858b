"""Stage keys (symda.stage_keys): every config field is decided for every stage, exactly the KEY fields
move a stage's key, the keys of stores built before schema 2 are unchanged (symda.legacy_keys), and
`migrate_store` links such a store's artifacts under the keys a run computes today."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from symda.artifacts import ArtifactStore, artifact_key
from symda.config import ExperimentConfig, flatten, load_config
from symda.legacy_keys import key_config as legacy_key_config
from symda.legacy_keys import migrate_store
from symda.stage_keys import (
    FIELDS,
    KEY,
    SCHEMA,
    pseudo_key,
    segmenter_key,
    translated_key,
    translator_key,
)
from symda.terms import TERMS

ALL_FIELDS = tuple(flatten(ExperimentConfig()))


def key_configs(cfg: ExperimentConfig) -> dict[str, dict[str, typing.Any]]:
    """Every table's key config in every context that can tell fields apart (paths, rounds)."""
    return {
        "translator": {"": translator_key(cfg)},
        "translated": {w: translated_key(cfg, w) for w in ("source", "target", "val")},
        "adapted": {p: segmenter_key(cfg, p, 0) for p in "TS"},
        "self_trained": {f"{p}{r}": segmenter_key(cfg, p, r) for p in "TS" for r in (1, 2)},
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
        f"{stage}: {missing} are neither KEY nor left out with a reason in symda/stage_keys.py FIELDS "
        "(a term's field: in its class's FIELDS, symda/terms/)"
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
    assert unclassified("adapted", flatten(cfg)) == ["train.dummy"]
    assert unclassified("translator", flatten(cfg)) == []  # the translator leaves train.* out wholesale


def test_every_terms_own_table_decides_exactly_its_config_fields():
    for term in TERMS.values():
        fields = {f.name for f in dataclasses.fields(term.Config)}
        assert set(term.FIELDS) == fields, f"{term.__module__}: FIELDS must decide {sorted(fields)}"


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
        return tuple(v + 1 for v in value) if value else (0.5,)
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
    "checkpoints kept by the reference": {"select.keep_checkpoints": True, "select.by": "agreement_ref"},
    "every term on": {f"adapt.{name}.{term.switch}": 0.5 for name, term in TERMS.items()},
    "online labels": {"self_train.labels": "online"},  # the teacher's settings count only then
}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(FIELDS))
def test_exactly_the_key_fields_change_a_stages_key(stage):
    """Change each field alone: a KEY field changes the stage's key config in some context (path, round,
    with or without SynthCity, terms on), every other field in none."""
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


def test_a_switched_off_term_leaves_the_segmenters_key_as_without_it():
    """A term that does not run is not in the key: adding a term file changes no stored network's key."""
    base = load_config()
    fields = segmenter_key(base, "T", 0)["fields"]
    off = [name for name, term in TERMS.items() if not term.enabled(getattr(base.adapt, name))]
    assert off and not any(k.startswith(tuple(f"adapt.{n}." for n in off)) for k in fields)
    assert segmenter_key(base, "T", 0)["schema"] == SCHEMA


# Keys computed by symda 0.1 (before stage_keys.py) for these configs: stores built then stay valid
# through symda.legacy_keys (the golden keys) and `symda store migrate`.
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


def legacy_keys(cfg: ExperimentConfig) -> dict[str, str]:
    return {
        "translator": artifact_key("translator", legacy_key_config(cfg, "translator")),
        "translated_val": artifact_key("translated_val", legacy_key_config(cfg, "translated", which="val")),
        **{f"segmenter_{p} r{r}": artifact_key(f"segmenter_{p}", legacy_key_config(cfg, "segmenter", path=p, round_=r))
           for p, r in (("T", 0), ("S", 0), ("T", 1))},
        "pseudo r1": artifact_key("pseudo", legacy_key_config(cfg, "pseudo", round_=1)),
    }  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), LEGACY)
def test_keys_of_stores_built_by_symda_0_1_are_unchanged(overrides, expected):
    cfg = load_config(overrides=overrides)
    keys = legacy_keys(cfg)
    assert {k: keys[k] for k in expected} == expected
    residual = load_config(overrides={**overrides, "translate.residual": True})
    assert legacy_keys(residual)["translator"] != keys["translator"]


def write_store(root, cfg: ExperimentConfig, rounds: int = 2) -> dict[str, str]:
    """A store of schema-1 artifacts (artifact.json and one file each) for `cfg`'s whole chain, as
    symda before schema 2 wrote it; returns {name: old key}."""
    store = ArtifactStore(root)
    keys: dict[str, str] = {}

    def put(name: str, stage: str, config: dict, inputs: dict[str, str]) -> None:
        keys[name] = store.get_or_build(stage, config, inputs, lambda w: (w / "f.txt").write_text(name)).key

    put("translator", "translator", legacy_key_config(cfg, "translator"), {})
    for which in ("source", "target", "val"):
        put(f"translated_{which}", f"translated_{which}", legacy_key_config(cfg, "translated", which=which),
            {"translator": keys["translator"]})  # fmt: skip
    path_inputs = {"T": {k: keys[k] for k in ("translator", "translated_source")},
                   "S": {k: keys[k] for k in ("translator", "translated_target", "translated_val")}}  # fmt: skip
    for p in "TS":
        put(
            f"F_{p}_r0",
            f"segmenter_{p}",
            legacy_key_config(cfg, "segmenter", path=p, round_=0),
            path_inputs[p],
        )
    for r in range(1, rounds + 1):
        put(f"pseudo_r{r}", "pseudo", legacy_key_config(cfg, "pseudo", round_=r),
            {"F_T": keys[f"F_T_r{r - 1}"], "F_S": keys[f"F_S_r{r - 1}"]})  # fmt: skip
        for p in "TS":
            put(f"F_{p}_r{r}", f"segmenter_{p}", legacy_key_config(cfg, "segmenter", path=p, round_=r),
                {**path_inputs[p], "pseudo": keys[f"pseudo_r{r}"], "init": keys[f"F_{p}_r{r - 1}"]})  # fmt: skip
    return keys


def todays_keys(cfg: ExperimentConfig, rounds: int = 2) -> dict[str, str]:
    """The keys a run computes today for the same chain (symda.pipeline's inputs)."""
    keys = {"translator": artifact_key("translator", translator_key(cfg))}
    for which in ("source", "target", "val"):
        keys[f"translated_{which}"] = artifact_key(f"translated_{which}", translated_key(cfg, which),
                                                   {"translator": keys["translator"]})  # fmt: skip
    path_inputs = {"T": {k: keys[k] for k in ("translator", "translated_source")},
                   "S": {k: keys[k] for k in ("translator", "translated_target", "translated_val")}}  # fmt: skip
    for p in "TS":
        keys[f"F_{p}_r0"] = artifact_key(f"segmenter_{p}", segmenter_key(cfg, p, 0), path_inputs[p])
    for r in range(1, rounds + 1):
        keys[f"pseudo_r{r}"] = artifact_key("pseudo", pseudo_key(cfg, r),
                                            {"F_T": keys[f"F_T_r{r - 1}"], "F_S": keys[f"F_S_r{r - 1}"]})  # fmt: skip
        for p in "TS":
            inputs = {**path_inputs[p], "pseudo": keys[f"pseudo_r{r}"], "init": keys[f"F_{p}_r{r - 1}"]}
            keys[f"F_{p}_r{r}"] = artifact_key(f"segmenter_{p}", segmenter_key(cfg, p, r), inputs)
    return keys


MIGRATED = {
    "SynthCity v2, defaults": {},
    "SynthCity v1, residual off, bf16, holdout": {"synth.preset": "v1", "translate.residual": False,
                                                  "scale.precision": "bf16", "data.source_holdout": 10},
    "explicit roots, self-training steps, weight": {"data.source_root": "/data/gta5", "data.target_root": "/data/cs",
                                                    "self_train.steps": 150, "self_train.pseudo_weight": 0.5},
    "caffe, frozen BN, kept checkpoints, no adversarial term": {
        "model.backbone": "resnet50", "model.resnet_style": "caffe", "model.bn_mode": "frozen_affine",
        "select.keep_checkpoints": True, "select.by": "entropy", "adapt.adversarial.lambda_main": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("overrides", MIGRATED.values(), ids=MIGRATED.keys())
def test_migrating_an_old_store_links_every_artifact_under_todays_key(tmp_path, overrides):
    cfg = load_config(overrides={"synth.root": str(tmp_path / "synth"), **overrides})
    old = write_store(tmp_path / "store", cfg)
    done = migrate_store(tmp_path / "store")
    new = todays_keys(cfg)
    assert not done.skipped and len(done.linked) == len(old)
    store = ArtifactStore(tmp_path / "store")
    for name, key in new.items():
        found = [r for r in store.records() if r["key"] == key]
        assert found, f"{name}: no artifact under today's key {key}"
        assert (store.path(found[0]["stage"], key) / "f.txt").read_text() == name
        assert found[0]["config"]["schema"] == SCHEMA
    # The old artifacts stay as they were; a second migration finds everything in place.
    assert all(store.exists(r["stage"], r["key"]) for r in store.records() if r["key"] in old.values())
    again = migrate_store(tmp_path / "store")
    assert not again.linked and len(again.present) == len(old)


def test_migration_links_files_without_copying_them(tmp_path):
    cfg = load_config(overrides={"synth.root": str(tmp_path / "synth")})
    old = write_store(tmp_path / "store", cfg, rounds=0)
    migrate_store(tmp_path / "store")
    store = ArtifactStore(tmp_path / "store")
    new = todays_keys(cfg, rounds=0)["translator"]
    a, b = store.path("translator", old["translator"]) / "f.txt", store.path("translator", new) / "f.txt"
    assert a.stat().st_ino == b.stat().st_ino
    assert (
        json.loads((store.path("translator", old["translator"]) / "artifact.json").read_text())["key"]
        == old["translator"]
    )


def test_a_field_added_after_schema_2_enters_a_key_only_away_from_what_runs_did_before_it():
    """Measured against the value that means the old behaviour, not against today's default: so a
    change of a default (offline -> online labels) cannot give new runs the keys of stored ones."""
    from symda.stage_keys import ADDED_SINCE_SCHEMA_2

    offline = segmenter_key(load_config(overrides={"self_train.labels": "offline"}), "T", 1)["fields"]
    online = segmenter_key(load_config(overrides={"self_train.labels": "online"}), "T", 1)["fields"]
    assert not set(ADDED_SINCE_SCHEMA_2) & set(offline)
    assert online["self_train.labels"] == "online" and "self_train.mix" not in online  # DACS's classmix
    mixed = load_config(overrides={"self_train.labels": "online", "self_train.mix": "none"})
    assert segmenter_key(mixed, "T", 1)["fields"]["self_train.mix"] == "none"
    # The teacher's settings do not exist for offline labels: no key moves with them.
    teacherless = load_config(overrides={"self_train.labels": "offline", "self_train.mix": "none"})
    assert segmenter_key(teacherless, "T", 1)["fields"] == offline
