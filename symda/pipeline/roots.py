"""Where each path's data lies: the datasets' roots and their translations, and the two paths.

F_T trains on S' (labelled) and T, and is evaluated on V; F_S trains on S and T', and is evaluated on
V' = G(V, source). `network_paths` is the one place that pairs a path with its datasets.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from symda.config import ExperimentConfig
from symda.records import NetworkId

# Translation directions: which dataset is translated into which style (0 = source, 1 = target).
TRANSLATIONS: dict[str, tuple[str, str | None, int]] = {
    "source": ("source", None, 1),  # S' = G(S, target): source content, target style, source labels
    "target": ("target", "train", 0),  # T' = G(T, source)
    "val": ("target", "val", 0),  # V' = G(V, source), for fused inference
}

# Where a pseudo-label artifact holds each path's images with the labels: T's style, and T' for F_S.
PSEUDO_FOLDERS = {"T": "data", "S": "data_translated"}


@dataclasses.dataclass(frozen=True)
class DomainRoots:
    """Dataset roots of one experiment: originals, and their translations (= originals when translation is off)."""

    source: Path  # S (labelled, GTA5/SYNTHIA layout)
    target: Path  # T and V (Cityscapes layout)
    source_translated: Path  # S' = G(S, target)
    target_translated: Path  # T' = G(T, source) (train split)
    val_translated: Path  # V' = G(V, source) (val split, labels copied)


def with_roots(
    cfg: ExperimentConfig, source_root: Path | None = None, target_root: Path | None = None
) -> ExperimentConfig:
    """A copy of cfg whose data roots point elsewhere (translated or pseudo-labelled data)."""
    data = cfg.data
    if source_root is not None:
        data = dataclasses.replace(data, source_root=str(source_root))
    if target_root is not None:
        data = dataclasses.replace(data, target_root=str(target_root))
    return dataclasses.replace(cfg, data=data)


@dataclasses.dataclass(frozen=True)
class NetworkPath:
    """One of the method's two segmentation paths: the data its network trains and is evaluated on.

    "T": F_T, labelled S' and unlabelled T, evaluated on V; "S": F_S, labelled S and unlabelled T',
    evaluated on V'.
    """

    name: str  # "T" | "S"
    source_root: Path  # labelled images in this path's style (S' or S)
    target_root: Path  # unlabelled target images in this path's style (T or T')
    val_root: Path  # target val images in this path's style (V or V')
    inputs: dict[str, str]  # artifact keys of those datasets (translator, translations): only its own
    pseudo_folder: str  # where a pseudo-label artifact holds this path's images + labels

    def network(self, round_: int) -> NetworkId:
        """The identity of this path's network after round `round_` (its tag, record key, store stage)."""
        return NetworkId(self.name, round_)


def network_paths(roots: DomainRoots, keys: dict[str, str]) -> tuple[NetworkPath, NetworkPath]:
    """(F_T's path, F_S's path) over translation_stage's roots and artifact keys.

    Each path's inputs are only the data it trains on, so F_T of a single-path row and of a symmetric
    row are one artifact.
    """

    def pick(*names: str) -> dict[str, str]:
        return {k: v for k, v in keys.items() if k in names}

    return (
        NetworkPath("T", roots.source_translated, roots.target, roots.target,
                    pick("translator", "translated_source"), PSEUDO_FOLDERS["T"]),
        NetworkPath("S", roots.source, roots.target_translated, roots.val_translated,
                    pick("translator", "translated_target", "translated_val"), PSEUDO_FOLDERS["S"]),
    )  # fmt: skip
