import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import symda.translate.apply as apply_mod
import symda.translate.train as train_mod
from symda.config import TranslateConfig, load_config
from symda.data import build_dataset, cityscapes, gta5
from symda.translate import (
    METRIC_KEYS,
    TranslationExistsError,
    checkpoint_digest,
    load_generator,
    train_translator,
    translate_root,
)
from tests.conftest import write_gta5

SIZE = (16, 32)


def tiny_cfg(**overrides) -> TranslateConfig:
    base = dict(
        g_conv_dim=8, g_repeat_num=1, d_conv_dim=8, d_repeat_num=3, image_size=SIZE, batch_size=4,
        generator_steps=2, n_critic=2, log_every=1, sample_every=1, checkpoint_every=2,
    )  # fmt: skip
    base.update(overrides)
    return TranslateConfig(**base)


def datasets(tiny_data, tmp_path):
    cfg = load_config(
        overrides={
            "data.source_root": str(tiny_data["source"]),
            "data.target_root": str(tiny_data["target"]),
            "data.source_size": [32, 64],
            "data.target_size": [32, 64],
            "data.crop_size": list(SIZE),
            "synth.root": str(tmp_path / "synth"),
        }
    )
    return build_dataset(cfg.data, cfg.synth, "source"), build_dataset(cfg.data, cfg.synth, "target")


def collect():
    reports = []
    return reports, lambda m, checkpoint=None: reports.append((m, checkpoint))


def test_two_step_run_reports_every_metric_and_writes_outputs(tiny_data, tmp_path):
    source, target = datasets(tiny_data, tmp_path)
    reports, report = collect()
    ckpt = train_translator(tiny_cfg(), source, target, tmp_path / "tr", report)
    assert ckpt == tmp_path / "tr" / "translator.pt" and ckpt.is_file()
    assert [m["step"] for m, _ in reports] == [1, 2]
    assert [c for _, c in reports] == [None, ckpt]
    for m, _ in reports:
        assert set(METRIC_KEYS) | {"step", "lr", "images_per_s"} <= set(m)
        assert all(np.isfinite(m[k]) for k in METRIC_KEYS)
        assert 0 <= m["d_cls_acc_real"] <= 1 and 0 <= m["d_cls_acc_fake"] <= 1
        assert m["d_loss_gp"] >= 0 and m["g_loss_rec"] > 0
    assert [m["lr"] for m, _ in reports] == [1e-4, 1e-4]  # the decay starts after decay_start * steps = 1
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 2 and {"G", "D", "g_opt", "d_opt"} <= set(state)
    grid = Image.open(tmp_path / "tr" / "samples" / "step_000002.png")
    # 4 source + 4 target rows, columns input | translated | reconstructed, 2 px gaps between tiles.
    assert grid.size == (3 * (SIZE[1] + 2) - 2, 8 * (SIZE[0] + 2) - 2)
    assert (tmp_path / "tr" / "samples" / "step_000001.png").is_file()


def test_resume_continues_from_the_checkpoint_and_matches_a_straight_run(tiny_data, tmp_path):
    source, target = datasets(tiny_data, tmp_path)
    cfg = tiny_cfg(generator_steps=4, log_every=1, sample_every=100)
    train_translator(cfg, source, target, tmp_path / "straight", lambda *a, **k: None)

    class Stop(Exception):
        pass

    def stop_after_checkpoint(metrics, checkpoint=None):
        if checkpoint is not None:
            raise Stop

    with pytest.raises(Stop):
        train_translator(cfg, source, target, tmp_path / "resumed", stop_after_checkpoint)
    assert torch.load(tmp_path / "resumed" / "translator.pt", weights_only=True)["step"] == 2
    reports, report = collect()
    train_translator(cfg, source, target, tmp_path / "resumed", report, resume=True)
    assert [m["step"] for m, _ in reports] == [3, 4]
    a = torch.load(tmp_path / "straight" / "translator.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "translator.pt", weights_only=True)
    for net in ("G", "D"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=0, msg=f"{net}.{k}")


def test_non_finite_loss_names_the_step(tiny_data, tmp_path, monkeypatch):
    source, target = datasets(tiny_data, tmp_path)
    monkeypatch.setattr(train_mod, "gradient_penalty", lambda out, x: out.sum() * float("nan"))
    with pytest.raises(FloatingPointError, match=r"nan at G step 1 \(d_loss\)"):
        train_translator(tiny_cfg(), source, target, tmp_path / "tr", lambda *a, **k: None)


def test_non_finite_loss_inside_a_log_window_names_its_own_step(tiny_data, tmp_path, monkeypatch):
    # Losses are read once per log interval: a NaN at G step 2 of a 3-step window is still named as step 2.
    source, target = datasets(tiny_data, tmp_path)
    calls = {"n": 0}

    def penalty(out, x):
        calls["n"] += 1  # n_critic 2: D steps 3 and 4 belong to G step 2
        return out.sum() * (float("nan") if calls["n"] == 3 else 0.0)

    monkeypatch.setattr(train_mod, "gradient_penalty", penalty)
    cfg = tiny_cfg(generator_steps=3, log_every=3, sample_every=3, checkpoint_every=3)
    with pytest.raises(FloatingPointError, match=r"nan at G step 2 \(d_loss\)"):
        train_translator(cfg, source, target, tmp_path / "tr", lambda *a, **k: None)
    assert not (tmp_path / "tr" / "translator.pt").exists()  # the check comes before the checkpoint


def test_a_step_reads_no_value_off_the_device_and_a_log_interval_one(tiny_data, tmp_path, monkeypatch):
    """The translator loop turns its loss tensors into Python values once per log interval or checkpoint."""
    from tests.conftest import count_host_reads

    source, target = datasets(tiny_data, tmp_path)
    methods = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu")
    reads = count_host_reads(monkeypatch, ("translate/train.py", "symda/training.py"), methods)
    cfg = tiny_cfg(generator_steps=6, log_every=3, sample_every=6, checkpoint_every=2)
    train_translator(cfg, source, target, tmp_path / "tr", lambda *a, **k: None)
    in_steps = [r for r in reads if not r.endswith(" in values")]
    # Besides the window: the sample grid (step 6).
    assert in_steps == ["cpu in tanh_to_uint8"], in_steps
    # Log lines at G steps 3 and 6, a checkpoint at 2 and 4 between them: 4 windows read, once each.
    assert reads.count("tolist in values") == 4


def test_rejects_crops_of_the_wrong_size(tiny_data, tmp_path):
    source, target = datasets(tiny_data, tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        train_translator(tiny_cfg(image_size=(8, 32)), source, target, tmp_path / "tr", lambda *a, **k: None)


def fake_checkpoint(path, seed):
    """A translator.pt with random weights (what translation needs; training is tested above); the
    published generator, since a residual one starts as the identity."""
    cfg = tiny_cfg(residual=False)
    torch.manual_seed(seed)
    G, D = train_mod.build_translator(cfg)
    torch.save({"G": G.state_dict(), "D": D.state_dict(), "step": 0, "config": dataclasses.asdict(cfg)}, path)
    return path


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_translated_roots_load_with_the_real_loaders_at_full_resolution(tiny_data, tmp_path):
    ckpt = fake_checkpoint(tmp_path / "translator.pt", seed=0)
    # A GTA5 root with mixed sizes, one not a multiple of 4 (as real frames may be after cropping).
    src = write_gta5(tmp_path / "gta_mixed", 2, h=30, w=50)
    for sub in ("images", "labels"):
        shutil.copy(tiny_data["source"] / sub / "00001.png", src / sub / "00003.png")

    s_prime = translate_root(ckpt, "gta5", src, None, 1, tmp_path / "S_prime", batch_size=2)
    before, after = gta5.list_gta5(src), gta5.list_gta5(s_prime)
    assert [s.name for s in after] == [s.name for s in before]
    G = load_generator(ckpt)
    assert not G.training
    for b, a in zip(before, after, strict=True):
        assert np.array_equal(gta5.read_label_ids(a.label), gta5.read_label_ids(b.label))
        original, translated = read_rgb(b.image), read_rgb(a.image)
        assert translated.shape == original.shape
        assert not np.array_equal(translated, original)
        # The file holds exactly G(x, target) of the full image.
        with torch.no_grad():
            x = torch.from_numpy(original.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
            expected = train_mod.tanh_to_uint8(G(x, torch.tensor([1])))[0]
        assert np.abs(translated.astype(int) - expected.astype(int)).max() <= 1

    t_prime = translate_root(ckpt, "cityscapes", tiny_data["target"], "train", 0, tmp_path / "T_prime")
    names = [s.name for s in cityscapes.list_cityscapes(tiny_data["target"], "train", with_labels=False)]
    assert [s.name for s in cityscapes.list_cityscapes(t_prime, "train", with_labels=False)] == names
    assert not (t_prime / "gtFine").exists()  # target training labels are never copied

    v_prime = translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 0, tmp_path / "V_prime")
    for a, b in zip(
        cityscapes.list_cityscapes(v_prime, "val"),
        cityscapes.list_cityscapes(tiny_data["target"], "val"),
        strict=True,
    ):
        assert a.name == b.name
        assert np.array_equal(cityscapes.decode_label(a.label), cityscapes.decode_label(b.label))
        assert read_rgb(a.image).shape == read_rgb(b.image).shape
    assert not list(tmp_path.glob(".*partial*"))


def test_a_translation_records_how_much_it_changed_the_images(tiny_data, tmp_path, capsys):
    """translation.json's mean_change is mean |S' - S| in grey levels: several for a translator that
    translates, about 0 for one that returns its input (a residual generator at its start)."""
    from symda.translate.apply import IDENTITY_CHANGE, translation_change

    out = translate_root(fake_checkpoint(tmp_path / "a.pt", seed=0), "gta5", tiny_data["source"], None, 1,
                         tmp_path / "S_prime")  # fmt: skip
    pairs = [(read_rgb(b.image), read_rgb(a.image))
             for b, a in zip(gta5.list_gta5(tiny_data["source"]), gta5.list_gta5(out), strict=True)]  # fmt: skip
    expected = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for b, a in pairs])  # all 12: same size
    assert translation_change(out) == pytest.approx(expected) and expected > IDENTITY_CHANGE

    cfg = tiny_cfg(residual=True)
    torch.manual_seed(0)
    G, D = train_mod.build_translator(cfg)
    residual = tmp_path / "residual.pt"
    torch.save(
        {"G": G.state_dict(), "D": D.state_dict(), "step": 0, "config": dataclasses.asdict(cfg)}, residual
    )
    same = translate_root(residual, "gta5", tiny_data["source"], None, 1, tmp_path / "S_same")
    assert translation_change(same) < IDENTITY_CHANGE
    assert translation_change(tmp_path) is None  # no translation.json: not measured

    from symda.cli import main  # the same measure for any dataset and its translation

    flags = ["translate", "change", "--data", str(tiny_data["source"]), "--kind", "gta5", "--translated"]
    assert main([*flags, str(out)]) == 0
    assert f"mean |X' - X| {expected:.3f} grey levels over 12 images" in capsys.readouterr().out
    assert main([*flags, str(same)]) == 0 and "the translator learned the identity" in capsys.readouterr().out
    assert main([*flags, str(tmp_path)]) == 2
    assert "images/00001.png: no translation of" in capsys.readouterr().err


def test_reuse_with_the_same_checkpoint_and_refuse_another(tiny_data, tmp_path, monkeypatch):
    ckpt = fake_checkpoint(tmp_path / "a.pt", seed=0)
    out = translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 0, tmp_path / "V_prime")
    record = (out / "translation.json").read_text()
    assert checkpoint_digest(ckpt) in record and "target->source" in record

    monkeypatch.setattr(apply_mod, "load_generator", lambda *a, **k: pytest.fail("reuse must not translate"))
    assert translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 0, out) == out

    other = fake_checkpoint(tmp_path / "b.pt", seed=1)
    with pytest.raises(TranslationExistsError) as err:
        translate_root(other, "cityscapes", tiny_data["target"], "val", 0, out)
    assert checkpoint_digest(ckpt) in str(err.value) and checkpoint_digest(other) in str(err.value)
    with pytest.raises(TranslationExistsError, match="to_domain"):
        translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 1, out)


def test_interrupted_translation_leaves_nothing_at_out_root_and_resumes(
    tiny_data, tmp_path, monkeypatch, caplog
):
    ckpt = fake_checkpoint(tmp_path / "a.pt", seed=0)
    real_write, written = apply_mod._write_png, []

    def failing_write(path, array):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(path)
        real_write(path, array)

    monkeypatch.setattr(apply_mod, "_write_png", failing_write)
    with pytest.raises(KeyboardInterrupt):
        translate_root(ckpt, "gta5", tiny_data["source"], None, 1, tmp_path / "S_prime", batch_size=1)
    assert not (tmp_path / "S_prime").exists()

    written.clear()
    monkeypatch.setattr(apply_mod, "_write_png", lambda p, a: (written.append(p), real_write(p, a)))
    caplog.set_level("WARNING")
    out = translate_root(ckpt, "gta5", tiny_data["source"], None, 1, tmp_path / "S_prime", batch_size=4)
    assert (
        "resuming the interrupted translation in" in caplog.text
        and "(5 images already written)" in caplog.text
    )
    assert len(written) == 12 - 5  # only the images the first run did not finish
    assert len(gta5.list_gta5(out)) == 12


def test_the_translators_identity_is_its_weights_not_its_files_bytes(tmp_path, tiny_data):
    """The same weights saved again (another process's serialization id, another key order) have the
    same digest; a translation.json of the file-bytes digest (written before) is still accepted."""
    import json

    ckpt = fake_checkpoint(tmp_path / "a.pt", seed=0)
    blob = torch.load(ckpt, weights_only=True)
    again = tmp_path / "again.pt"
    torch.save(
        {"G": dict(reversed(list(blob["G"].items()))), **{k: v for k, v in blob.items() if k != "G"}}, again
    )
    assert checkpoint_digest(again) == checkpoint_digest(ckpt)
    out = translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 0, tmp_path / "V_prime")
    marker = out / "translation.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, "checkpoint_sha256": apply_mod.file_digest(ckpt)}))
    assert translate_root(ckpt, "cityscapes", tiny_data["target"], "val", 0, out) == out
