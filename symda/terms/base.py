"""What a loss term is, and how a term's file says which of its config fields shape an artifact.

A segmentation stage (symda.adapt.loop) is one loop over a list of terms. Every step:

1. the segmenter runs on each data stream whose outputs a term uses (its `stream` and `reads`), in
   STREAMS order ("source": labelled source images; "pseudo": target images with pseudo labels;
   "target": unlabelled target images; a stream only in a term's `batches` is loaded, not run), and after
   each stream's forward pass the loop backpropagates the sum of the losses of the terms whose
   `stream` it is, so at most one pass's graph is alive (AdaptSegNet's order);
2. each term's `update` makes its own networks' steps (a discriminator's) from the step's outputs;
3. the segmenter's optimiser steps; every term optimiser's learning rate follows the segmenter's poly
   schedule.

Two kinds of terms: the stage's own (source cross-entropy, always; pseudo-label cross-entropy in a
self-training round), which the pipeline adds, and adaptation terms, which a config switches on.
An adaptation term is one file in this package: a class registered with `@register` that names its
config section (`adapt.<name>`), the section's dataclass (`Config`), which field switches it on
(`switch`: the term runs when that field is > 0) and, field by field, whether the field shapes the
stage's artifact (`FIELDS`: KEY, or the reason it cannot; symda.stage_keys builds the artifact key
from that table and tests/test_stage_keys.py fails on a field nobody decided).

A term's module imports without torch (the config reads every term's section, and results and
analysis read configs without torch): it imports torch, and symda.models for its networks, inside
its methods. Its tensors arrive through the step (`Step`, symda.adapt.step) and its networks'
placement through the context (`TermContext`, the loop's runtime, seed and model).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from symda.adapt.step import Step, TermContext

KEY = "key"  # a field that shapes the artifact (symda.stage_keys)
STREAMS = ("source", "pseudo", "target")  # the data streams a step can run, in the order it runs them

Losses = dict[str, "torch.Tensor"]
"""{metric name: 0-dim tensor on the device}: what a term's step gives the loop's log window (no host
read inside a step; the window reads a whole log interval at once)."""


class Term:
    """One part of a segmentation stage's loss (see the module docstring for the step's order)."""

    stream: ClassVar[str] = "source"  # the stream whose forward pass its loss backpropagates through
    reads: ClassVar[tuple[str, ...]] = ()  # further streams whose outputs it reads (not through its loss)
    batches: ClassVar[
        tuple[str, ...]
    ] = ()  # streams whose batches it reads without the segmenter's pass on them

    def setup(self, ctx: TermContext) -> None:
        """Build the term's own networks and optimisers where the loop runs (called once per stage,
        before a checkpoint is restored); the default has none."""

    def loss(self, step: Step) -> tuple[torch.Tensor | None, Losses]:
        """(the weighted loss to backpropagate through `stream`'s forward pass, or None; its metrics)."""
        raise NotImplementedError

    def update(self, step: Step) -> Losses:
        """The term's own networks' updates, after every backward pass of the step; their metrics."""
        return {}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The term's optimisers; the loop decays them with the segmenter's schedule."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the term (tensors, numbers, strings and dicts or lists of them)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], where: str) -> None:
        """Restore `state_dict`'s output; `where` names the checkpoint for error messages."""


class AdaptationTerm(Term):
    """A term that a config section switches on: `adapt.<name>` (see the module docstring)."""

    name: ClassVar[str]  # its config section under adapt and its name in checkpoints
    Config: ClassVar[type]  # the section's dataclass: defaults are the published recipe's, switched off
    FIELDS: ClassVar[dict[str, str]]  # every Config field: KEY or why it cannot change the artifact
    switch: ClassVar[str]  # the Config field whose value > 0 turns the term on
    method: ClassVar[str]  # the published method this term alone stands for ("AdvEnt"): row names

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def enabled(cls, config: Any) -> bool:
        return getattr(config, cls.switch) > 0

    @classmethod
    def check(cls, config: Any) -> list[tuple[str, str]]:
        """[(field, what is wrong)] of a section no run could use; the config names the dotted key."""
        return []


def run_streams(terms: Iterable[Term]) -> set[str]:
    """The streams the segmenter runs on: those whose outputs some term uses."""
    return {s for t in terms for s in (t.stream, *t.reads)}


def data_streams(terms: Iterable[Term]) -> set[str]:
    """The streams a stage needs data for: those it runs on and those whose batches a term reads."""
    return {s for t in terms for s in (t.stream, *t.reads, *t.batches)}


TERMS: dict[str, type[AdaptationTerm]] = {}  # filled by @register as symda.terms imports each term file


def register(cls: type[AdaptationTerm]) -> type[AdaptationTerm]:
    """Class decorator: make an adaptation term known to the config, the stage keys and the loop."""
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"{cls.__name__}.Config must be a dataclass")
    if cls.name in TERMS and TERMS[cls.name] is not cls:
        raise TypeError(f"two terms named {cls.name!r}: {TERMS[cls.name].__module__} and {cls.__module__}")
    if cls.switch not in {f.name for f in dataclasses.fields(cls.Config)}:
        raise TypeError(f"{cls.__name__}.switch {cls.switch!r} is not a field of its Config")
    TERMS[cls.name] = cls
    return cls


def stream_id(name: str) -> int:
    """A number of its own for `name` (a term's), to seed what it initialises apart from every other
    stream of random numbers of a run (symda.adapt.step.TermContext.seeded)."""
    return zlib.crc32(name.encode()) + 1000  # above the loop's data streams' ids


# Checks shared by term sections (AdaptationTerm.check).


def non_negative(config: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"must be >= 0, got {getattr(config, n)!r}") for n in names if not getattr(config, n) >= 0]


def positive(config: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"must be > 0, got {getattr(config, n)!r}") for n in names if not getattr(config, n) > 0]


def one_of(config: Any, name: str, choices: tuple[Any, ...]) -> list[tuple[str, str]]:
    value = getattr(config, name)
    return [] if value in choices else [(name, f"{value!r} is not one of {list(choices)}")]
