from pathlib import Path

import pytest

from symda.config import ConfigError, config_hash, flatten, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_defaults_validate_and_round_trip(tmp_path):
    cfg = load_config()
    saved = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(saved) == cfg
    assert config_hash(load_config(saved)) == config_hash(cfg)


def test_overrides_use_dotted_keys_and_yaml_values():
    cfg = load_config(overrides=["train.lr=1e-3", "data.source_size=[32, 64]", "model.aux_head=true"])
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.data.source_size == (32, 64)
    assert cfg.model.aux_head is True
    assert flatten(cfg)["train.lr"] == pytest.approx(1e-3)


def test_yaml_reads_exponent_floats(tmp_path):
    assert load_config(write(tmp_path, "train:\n  lr: 2.5e-4\n")).train.lr == pytest.approx(2.5e-4)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train:\n  lrr: 0.1\n", "train.lrr: unknown key"),
        ("bogus: 1\n", "bogus: unknown key"),
        ("train:\n  lr: fast\n", "train.lr: expected a number"),
        ("train:\n  steps: 1.5\n", "train.steps: expected an integer"),
        ("model:\n  backbone: vgg16\n", "model.backbone: 'vgg16' is not one of"),
        ("train:\n  steps: 0\n", "train.steps: must be > 0"),
        ("data:\n  source_size: [64]\n", "data.source_size: expected a list of 2 values"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_yaml_names_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_bad_override_names_key():
    with pytest.raises(ConfigError, match=r"--set .*train\.nope: unknown key"):
        load_config(overrides=["train.nope=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(overrides=["train.lr"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_load():
    files = sorted(CONFIGS.rglob("*.yaml"))
    files = [f for f in files if "sweeps" not in f.parts and "study" not in f.parts]  # spaces, studies
    assert files, "configs/ holds experiment files"
    for f in files:
        load_config(f)


def test_moved_keys_name_their_new_place_and_stored_configs_still_load(tmp_path):
    old = write(tmp_path, "pseudo:\n  self_train_steps: 150\n  rounds: 2\nadapt:\n  pseudo_weight: 0.5\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: pseudo.self_train_steps: moved to self_train.steps"):
        load_config(old)
    with pytest.raises(ConfigError, match=r"adapt.pseudo_weight: moved to self_train.pseudo_weight"):
        load_config(overrides=["adapt.pseudo_weight=0.5"])
    # A run folder's config.yaml written by symda 0.1 (and a sweep's stored overrides) keep loading.
    cfg = load_config(old, {"pseudo.self_train_paths": "T"}, legacy=True)
    assert (cfg.self_train.steps, cfg.self_train.rounds, cfg.self_train.pseudo_weight) == (150, 2, 0.5)
    assert cfg.self_train.paths == "T"


def test_the_renamed_model_and_translator_keys_say_why_and_old_runs_still_load(tmp_path):
    old = write(tmp_path, "model:\n  freeze_bn: true\ntranslate:\n  steps: 200000\n")
    with pytest.raises(ConfigError, match=r"translate.steps: moved to translate.generator_steps \(generator updates; "
                                          r"StarGAN's official 200k iterations are critic iterations"):  # fmt: skip
        load_config(overrides=["translate.steps=200000"])
    with pytest.raises(
        ConfigError, match=r"model.freeze_bn: moved to model.bn_mode \(true is bn_mode frozen"
    ):
        load_config(overrides=["model.freeze_bn=true"])
    cfg = load_config(old, {"model.freeze_bn": False}, legacy=True)  # a run folder's config.yaml of before
    assert (cfg.translate.generator_steps, cfg.model.bn_mode) == (200000, "train")
    assert load_config(old, legacy=True).model.bn_mode == "frozen"


def test_caffe_style_needs_a_bottleneck_resnet():
    with pytest.raises(ConfigError, match="model.resnet_style: caffe.*resnet18 has basic blocks"):
        load_config(overrides=["model.resnet_style=caffe"])
    assert (
        load_config(overrides=["model.resnet_style=caffe", "model.backbone=resnet50"]).model.resnet_style
        == "caffe"
    )


def test_a_self_training_round_reads_its_own_rate_quantile_and_terms():
    from symda.config import round_pseudo_config, stage_train_config
    from symda.pipeline.segmenters import stage_terms
    from symda.stage_keys import segmenter_key

    cfg = load_config(overrides={"self_train.lr": 1e-4, "pseudo.round_quantiles": [0.3, 0.25],
                                 "self_train.adaptation_terms": False})  # fmt: skip
    assert stage_train_config(cfg, 0).lr == cfg.train.lr and stage_train_config(cfg, 1).lr == 1e-4
    assert [round_pseudo_config(cfg, r).pseudo.quantile for r in (1, 2, 3)] == [0.3, 0.25, 0.25]
    assert [type(t).__name__ for t in stage_terms(cfg, 0)] == ["SourceCrossEntropy", "OutputAdversarial"]
    assert [type(t).__name__ for t in stage_terms(cfg, 1)] == [
        "SourceCrossEntropy",
        "PseudoLabelCrossEntropy",
    ]
    # Switches added after schema 2 enter a key only away from their defaults: stored keys stay.
    fields = segmenter_key(load_config(), "T", 1)["fields"]
    assert not {"self_train.init", "self_train.lr", "self_train.adaptation_terms"} & set(fields)
    assert segmenter_key(load_config(overrides={"self_train.lr": 1e-3}), "T", 1) == segmenter_key(
        load_config(), "T", 1
    )
    assert segmenter_key(cfg, "T", 1)["fields"]["self_train.lr"] == 1e-4


def test_auto_precision_resolves_on_load_from_the_cpu_flags(tmp_path):
    """scale.precision auto becomes bf16 only on a CPU whose flags have AVX512-BF16 or AMX (bf16 is
    emulated, ~25x slower, without them); the loaded config holds what will run, never "auto"."""
    from symda.config import fast_precision

    with_bf16, without = tmp_path / "bf16", tmp_path / "plain"
    with_bf16.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    without.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert fast_precision(False, with_bf16) == "bf16"
    assert fast_precision(False, without) == "fp32"
    assert fast_precision(False, tmp_path / "missing") == "fp32"
    cfg = load_config(overrides=["scale.precision=auto"])
    assert cfg.scale.precision == fast_precision(False)
    assert load_config(overrides=["scale.precision=bf16"]).scale.precision == "bf16"  # explicit: as asked
