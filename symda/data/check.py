"""Dataset check (`symda check-data`, and before every training run).

Finds missing or extra label files, image/label size mismatches, unreadable files and label values
outside the dataset's known ids. Every problem names its file; the report gives counts per kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from symda.data.dataset import DatasetError, Sample


@dataclass(frozen=True)
class Problem:
    kind: str  # missing_image | missing_label | extra_label | unreadable_image | unreadable_label | size_mismatch | unknown_label_values
    path: str
    detail: str


@dataclass
class DataReport:
    root: str
    n_samples: int
    problems: list[Problem] = field(default_factory=list)
    bad: set[int] = field(default_factory=set)  # indices of samples that cannot be trained on
    # Known quirks of the published dataset that the listing already left out (e.g. GTA5's 25 missing
    # frames): reported by name, never a reason to stop.
    known: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def summary(self, max_per_kind: int = 10) -> str:
        """Readable report: one line per kind with its count, then the first files of each kind."""
        known = self._known_lines(max_per_kind)
        if self.ok:
            return "\n".join([f"{self.root}: {self.n_samples} samples, no problems found", *known])
        lines = [f"{self.root}: {self.n_samples} samples, {len(self.bad)} unusable; problems:"]
        for kind, n in sorted(self.counts().items()):
            lines.append(f"  {kind}: {n}")
            for p in [p for p in self.problems if p.kind == kind][:max_per_kind]:
                lines.append(f"    {p.path}: {p.detail}")
            if n > max_per_kind:
                lines.append(f"    ... and {n - max_per_kind} more")
        return "\n".join(lines + known)

    def _known_lines(self, max_shown: int) -> list[str]:
        if not self.known:
            return []
        lines = [f"  known, skipped: {len(self.known)} ({self.known[0].detail})"]
        lines += [f"    {p.path}" for p in self.known[:max_shown]]
        if len(self.known) > max_shown:
            lines.append(f"    ... and {len(self.known) - max_shown} more")
        return lines


def check_samples(
    samples: list[Sample],
    read_label_ids: Callable[[Path], np.ndarray] | None,
    known_ids: frozenset[int],
    root: str,
    label_files: list[Path] | None = None,
    progress: bool = False,
) -> DataReport:
    """Check every sample; `label_files` (all label files on disk) lets it find labels without images."""
    report = DataReport(root=root, n_samples=len(samples))

    def problem(i: int | None, kind: str, path: Path, detail: str) -> None:
        report.problems.append(Problem(kind, str(path), detail))
        if i is not None:
            report.bad.add(i)

    for i, s in enumerate(tqdm(samples, desc=f"check {root}", disable=not progress, leave=False)):
        if not s.image.is_file():
            problem(i, "missing_image", s.image, "image file not found")
            continue
        try:
            with Image.open(s.image) as img:
                img.load()  # decodes fully: catches truncated and corrupt files, not only bad headers
                size = img.size
        except (OSError, SyntaxError) as err:
            problem(i, "unreadable_image", s.image, str(err))
            continue
        if s.label is None or read_label_ids is None:
            continue
        if not s.label.is_file():
            problem(i, "missing_label", s.label, f"no label file for {s.image.name}")
            continue
        try:
            ids = read_label_ids(s.label)
        except DatasetError as err:
            problem(i, "unreadable_label", s.label, str(err).split(": ", 1)[-1])
            continue
        if ids.shape != (size[1], size[0]):
            problem(i, "size_mismatch", s.label, f"label {ids.shape[1]}x{ids.shape[0]}, image {size[0]}x{size[1]}")
            continue
        unknown = sorted(set(np.unique(ids).tolist()) - known_ids)
        if unknown:
            problem(i, "unknown_label_values", s.label, f"values {unknown[:10]} are not known label ids")
    if label_files is not None:
        expected = {s.label for s in samples if s.label is not None}
        for extra in sorted(set(label_files) - expected):
            problem(None, "extra_label", extra, "label file without an image")
    return report
