"""What a run leaves beside its record: the pictures its stages drew, and each stage's cost.

Pictures stay where the stages drew them (in the store); a run folder names them in PICTURES and
draws its own PREDICTIONS_FILE. `StageTimer` measures each stage's seconds and peak resident memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from symda.artifacts import Artifact, ArtifactStore
from symda.config import ExperimentConfig
from symda.data import build_dataset, resolve_roots
from symda.io import atomic_write_text
from symda.pseudo.generate import FIGURE_FILE
from symda.tracking import sample_steps

from .roots import PSEUDO_FOLDERS, with_roots
from .selection import network_file

PICTURES = "pictures.md"  # a run folder's index of the pictures its stages drew (in the store)
PREDICTIONS_FILE = "predictions.png"  # a run folder's picture of its final networks on val images
PREDICTION_ROWS = 4


def synthcity_samples(cfg: ExperimentConfig) -> Path | None:
    """SynthCity's sample pairs (samples.png) when the run reads the generated SynthCity, else None."""
    synth = Path(cfg.synth.root) / "samples.png"
    if (
        synth.is_file()
        and Path(cfg.synth.root).resolve() in resolve_roots(cfg.data, cfg.synth)[1].resolve().parents
    ):
        return synth
    return None


def translator_samples(store: ArtifactStore, artifacts: dict[str, str]) -> list[tuple[int, Path]]:
    """[(step, grid)] of the run's translator's sample grids ([] without translation)."""
    if "translator" not in artifacts:
        return []
    return sample_steps(store.path("translator", artifacts["translator"]) / "samples")


def pseudo_label_figure(pseudo: Artifact) -> Path | None:
    """A pseudo-label artifact's panels (P_T, P_S, M_conf, labels), when it drew them."""
    figure = pseudo.path / PSEUDO_FOLDERS["T"] / FIGURE_FILE
    return figure if figure.is_file() else None


def run_pictures(cfg: ExperimentConfig, store: ArtifactStore, artifacts: dict[str, str]) -> dict[str, Path]:
    """{what: file} of the pictures a run's stages drew, where they lie: SynthCity's sample pairs,
    the translator's sample grids (the last one), each round's pseudo-label panels."""
    pictures: dict[str, Path] = {}
    synth = synthcity_samples(cfg)
    if synth is not None:
        pictures["SynthCity: source and target-val pairs"] = synth
    grids = translator_samples(store, artifacts)
    if grids:
        pictures[f"translator: sample translations ({grids[-1][1].stem})"] = grids[-1][1]
    for name, key in sorted(artifacts.items()):
        if name.startswith("pseudo_r"):
            figure = pseudo_label_figure(Artifact("pseudo", key, store.path("pseudo", key), reused=True))
            if figure is not None:
                pictures[
                    f"pseudo labels, round {name.removeprefix('pseudo_r')}: P_T, P_S, M_conf, labels"
                ] = figure
    return pictures


def prediction_figure(cfg: ExperimentConfig, f_t: Artifact, f_s: Artifact | None, val_translated: Path,
                      path: Path) -> Path:  # fmt: skip
    """The run's final F_T (and the fusion with F_S on V') on the first PREDICTION_ROWS val images,
    beside the ground truth: `save_prediction_figure` at `path`."""
    from symda.adapt.networks import load_segmenter
    from symda.evaluate import save_prediction_figure

    from .scoring import pair_probabilities

    val = build_dataset(cfg.data, cfg.synth, "val")
    model_s, val_t = None, None
    if f_s is not None:
        model_s = load_segmenter(cfg.model, network_file(f_s.path))
        val_t = build_dataset(
            with_roots(cfg, target_root=val_translated).data, cfg.synth, "val", with_labels=False
        )
    pair = pair_probabilities(load_segmenter(cfg.model, network_file(f_t.path)), model_s, val_t)
    rows = list(range(min(PREDICTION_ROWS, len(val))))
    return save_prediction_figure(pair, val, cfg.eval.fusion_weight, path, rows)


def write_pictures(out_dir: Path, pictures: dict[str, Path]) -> Path:
    """out_dir/PICTURES: one line per picture, its absolute path (the files stay in the store)."""
    lines = [f"# Pictures of the run {out_dir.name}", ""]
    lines += [f"- {what}: {Path(path).resolve()}" for what, path in pictures.items()] or ["(none)"]
    return atomic_write_text(out_dir / PICTURES, "\n".join(lines) + "\n")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since the last call (Linux: VmHWM, then reset by
    writing 5 to clear_refs), so that a run reports each stage's own peak; NaN where /proc cannot
    tell. Stage loops on Ray Train workers (scale.num_workers > 0) run in other processes."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, StopIteration, ValueError):
        return math.nan
    return float(peak)


class StageTimer:
    """Seconds and peak resident MB of each stage of a run (`with timer.stage("adapt"): ...`); a stage
    timed more than once (one per round) adds its seconds and keeps its highest peak."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        peak_rss_mb()  # from here on the stage's own peak
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            peak = peak_rss_mb()
            self.peak_mb[name] = max(self.peak_mb[name], peak) if name in self.peak_mb else peak
