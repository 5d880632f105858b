"""Shared fixtures: tiny datasets in the real on-disk layouts, made from random block label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from symda.data.labels import LABEL_ID_PALETTE, TRAIN_ID_TO_LABEL_ID

SHARED = Path(__file__).resolve().parents[2] / "shared"


def block_labels(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) uint8 Cityscapes labelIds: coarse random blocks, so a tiny net can learn something."""
    coarse = rng.choice(TRAIN_ID_TO_LABEL_ID, size=(h // 8 + 1, w // 8 + 1))
    return np.kron(coarse, np.ones((8, 8), dtype=np.uint8))[:h, :w].astype(np.uint8)


def image_for(label_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8 image whose colour is the label's palette colour plus noise."""
    img = LABEL_ID_PALETTE[label_ids].astype(np.int16) + rng.integers(-20, 21, size=(*label_ids.shape, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_gta5(root: Path, n: int, h: int = 32, w: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(1, n + 1):
        ids = block_labels(rng, h, w)
        Image.fromarray(image_for(ids, rng)).save(root / "images" / f"{i:05d}.png")
        lab = Image.frombytes("P", (w, h), ids.tobytes())  # palettised label ids, as GTA5 ships them
        lab.putpalette(LABEL_ID_PALETTE.tobytes())
        lab.save(root / "labels" / f"{i:05d}.png")
    return root


def write_cityscapes(root: Path, n_train: int, n_val: int, h: int = 32, w: int = 64, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            city = f"town{i % 2}"
            stem = f"{city}_{i:06d}_000019"
            img_dir = root / "leftImg8bit" / split / city
            lab_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            lab_dir.mkdir(parents=True, exist_ok=True)
            ids = block_labels(rng, h, w)
            Image.fromarray(image_for(ids, rng)).save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(ids).save(lab_dir / f"{stem}_gtFine_labelIds.png")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> dict[str, Path]:
    """A 12-image GTA5-layout source and a Cityscapes-layout target (8 train, 4 val), 32x64."""
    return {
        "source": write_gta5(tmp_path / "gta5", 12),
        "target": write_cityscapes(tmp_path / "cityscapes", 8, 4),
    }


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny tensors: one thread is as fast, and immune to a second process on the 2 cores
    (two threads that wait on each other there made parts of the suite 10x slower)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the whole test session (a start costs 5-8 s; tests that need Ray ask
    for this fixture, the others never start it). 2 CPUs, 256 MiB of object store, the custom
    resource "train_driver" that Ray Train driver trials hold (symda.sweeps.driver.trial_resources), the
    dashboard on a free loopback port, token auth off (loopback-only test cluster), usage stats off,
    and a short temp dir: Ray's socket paths must stay under 108 characters. Yields ray.init's context
    (dashboard_url, address_info["gcs_address"] for subprocesses that join it)."""
    import os
    import shutil
    import tempfile

    import ray

    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # before init: the cluster's processes inherit it
    temp = tempfile.mkdtemp(prefix="symda-ray-", dir="/tmp")
    ctx = ray.init(
        num_cpus=2,
        object_store_memory=256 * 2**20,
        _temp_dir=temp,
        resources={"train_driver": 2},
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=_free_port(),
        logging_level="WARNING",
    )
    yield ctx
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def count_host_reads(monkeypatch, file_suffix: str | tuple[str, ...], methods: tuple[str, ...]) -> list[str]:
    """Record "<method> in <function>" each time code in a file ending in `file_suffix` (or one of
    several) calls one of
    torch.Tensor's `methods` (item, tolist, ...: the calls that wait for the device); returns the list
    it fills."""
    import sys

    import torch

    reads: list[str] = []
    for name in methods:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            if sys._getframe(1).f_code.co_filename.endswith(file_suffix):
                reads.append(f"{_name} in {sys._getframe(1).f_code.co_name}")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads
