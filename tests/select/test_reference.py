"""select.reference: a checkpoint file, or a finished run folder's last F_T; anything else names the key."""

import json

import pytest
import torch

from symda.adapt.networks import build_segmenter
from symda.artifacts import ArtifactStore
from symda.config import ConfigError, load_config, save_config
from symda.pipeline.scoring import reference_network, reference_probabilities
from symda.pipeline.selection import network_file
from symda.records import NetworkId


def test_reference_is_a_checkpoint_or_a_run_folders_last_f_t(tmp_path, monkeypatch):
    cfg = load_config()
    assert reference_network(cfg) is None and reference_probabilities(cfg, torch.device("cpu")) is None
    net = build_segmenter(cfg.model)
    store = ArtifactStore(str(tmp_path / "artifacts"))
    run = tmp_path / "run"
    run.mkdir()
    keys = {}
    for tag in ("F_T_r0", "F_T_r1", "F_S_r1"):
        keys[tag] = f"key{tag}"
        folder = store.network_path(NetworkId.parse(tag), keys[tag])
        folder.mkdir(parents=True)
        torch.save({"model": net.state_dict()}, network_file(folder))
    (run / "result.json").write_text(json.dumps({"artifacts_dir": str(tmp_path / "artifacts"),
                                                 **{f"artifacts.{t}": k for t, k in keys.items()}}))  # fmt: skip
    save_config(cfg, run / "config.yaml")
    cfg.select.reference = str(run)
    found, model = reference_network(cfg)
    assert found == network_file(store.network_path(NetworkId.parse("F_T_r1"), "keyF_T_r1"))
    fn = reference_probabilities(cfg, torch.device("cpu"))
    probs = fn(torch.zeros(1, 3, 32, 64), [0])
    assert probs.shape[1] == 19 and torch.allclose(probs.sum(dim=1), torch.ones(1))
    assert fn(torch.ones(1, 3, 32, 64), [0]) is probs  # kept per batch: the reference never changes

    # A relative store is found from a trial's own working folder too: above the run folder.
    (run / "result.json").write_text(
        json.dumps({"artifacts_dir": "artifacts", **{f"artifacts.{t}": k for t, k in keys.items()}})
    )
    elsewhere = tmp_path / "trial_dir"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert reference_network(cfg)[0].resolve() == found.resolve()

    cfg.select.reference = str(found)
    assert reference_network(cfg)[0] == found
    cfg.select.reference = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="select.reference: .*nowhere"):
        reference_network(cfg)
