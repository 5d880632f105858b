"""Network outputs kept so that they are computed once: `Memos`, owned by whoever runs the stages.

What is kept: a fixed network's softmax over a dataset (F_S beside F_T's self-training, on V'), and
the full-size pseudo-label maps of the round-0 networks over T. A run keeps them for its own
evaluations and labelling passes; the sweeps' trial module keeps one `Memos` for the trials a Ray
actor runs in turn (reuse_actors), which all label T with the same round-0 F_T and F_S and score
beside the same F_S, so that only the first computes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from symda.config import ExperimentConfig
from symda.data.labels import NUM_CLASSES


class Memos:
    """The last `kept` memos used, by key (what identifies their contents: networks, datasets, how
    they are fed)."""

    def __init__(self, kept: int = 3) -> None:  # a run's labelling probabilities and maps, its partner's
        self.kept = kept
        self._memos: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The memo for `key`, made by `make()` the first time; now the most recently used."""
        memo = self._memos.pop(key) if key in self._memos else make()
        self._memos[key] = memo
        while len(self._memos) > self.kept:
            self._memos.popitem(last=False)
        return memo


def probabilities_bytes(dataset, networks: int) -> int:
    """Bytes of `networks` networks' float32 probabilities over `dataset` at 1/8 of its input size."""
    h, w = dataset.size
    return networks * len(dataset) * NUM_CLASSES * (h // 8 + 1) * (w // 8 + 1) * 4


def memo_key(dataset, cfg: ExperimentConfig, shared_by: tuple) -> tuple:
    """What a memo over `dataset` depends on: `shared_by` (networks, roots) and how the dataset is fed
    to them (images, input size, normalisation, batch size)."""
    return (*shared_by, len(dataset), tuple(dataset.size), cfg.data.normalize, cfg.eval.batch_size)


def probability_memo(dataset, cfg: ExperimentConfig, networks: int, memos: Memos | None = None,
                     shared_by: tuple | None = None) -> dict | None:  # fmt: skip
    """A memo for `pair_probabilities` when `networks` networks' output probabilities over `dataset`
    (at 1/8 of its input size, float32) fit in data.cache_mb, else None: on SynthCity they take a few MB,
    on Cityscapes train (2,975 frames) several GB, where recomputing is the better trade.

    With `memos` and `shared_by` (what identifies the probabilities: the networks' artifact keys, the
    dataset's root), the memo is the one `memos` keeps for them; else a fresh one."""
    if probabilities_bytes(dataset, networks) > cfg.data.cache_mb * 2**20:
        return None
    if memos is None or shared_by is None:
        return {}
    return memos.get(("probabilities", *memo_key(dataset, cfg, shared_by)), dict)
