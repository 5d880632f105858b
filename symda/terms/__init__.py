"""Loss terms: the parts a segmentation stage's loss is made of (symda.terms.base says what a term is).

Every module of this package except `base` and those whose name starts with "_" is a term's file;
importing the package imports them all, so that a new file is a new term with nothing else to edit.
`TERMS` maps each adaptation term's config section name (`adapt.<name>`) to its class, in name order.
"""

from __future__ import annotations

import importlib
import pkgutil

from symda.terms.base import TERMS, AdaptationTerm, Term

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

_sorted = sorted(TERMS.items())  # a stable order: a step sums its terms' losses in this order
TERMS.clear()
TERMS.update(_sorted)


def adaptation_terms(adapt: object) -> list[AdaptationTerm]:
    """The adaptation terms an `adapt` config section switches on, each built from its own section."""
    return [cls(getattr(adapt, name)) for name, cls in TERMS.items() if cls.enabled(getattr(adapt, name))]


__all__ = ["TERMS", "AdaptationTerm", "Term", "adaptation_terms"]
