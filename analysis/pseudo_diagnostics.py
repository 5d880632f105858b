"""Pseudo-label diagnostics of a finished `symda run`: does the consistency term pick better pixels?

    python analysis/pseudo_diagnostics.py runs/v2/ladder/full-s0 [runs/v2/ladder/full-s1 ...] \
        --out docs/results/v2/pseudo_diagnostics.md

For each run, rebuilds (from the artifact store, so nothing retrains) its round-0 networks F_T and
F_S, runs both paths over the target train split and compares the pseudo-label choices with the
split's true labels (SynthCity has them; training never reads them; see symda/pseudo/diagnostics.py):
per-class precision at equal coverage with M_prob alone and with the soft and hard consistency terms,
how often the paths disagree and who is right when they do. Writes a markdown report and a plot of
precision against coverage beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from symda.artifacts import ArtifactStore  # noqa: E402
from symda.config import ExperimentConfig, load_config  # noqa: E402
from symda.data.labels import CLASS_NAMES  # noqa: E402
from symda.pipeline import adapted_networks, labelling_inputs, translation_stage  # noqa: E402
from symda.pseudo.diagnostics import SCORES, PseudoDiagnostics  # noqa: E402
from symda.pseudo.generate import iter_pixel_maps  # noqa: E402

COVERAGES = (0.2, 0.4, 0.6, 0.8)
SCORE_NAMES = {"prob": "M_prob", "conf_soft": "M_conf (soft)", "conf_hard": "M_conf (hard)"}


def diagnose_run(run: Path, progress: bool = False) -> PseudoDiagnostics:
    """The diagnostics of one run folder's round-0 F_T and F_S over its target train split."""
    config = run / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no config.yaml)")
    cfg: ExperimentConfig = load_config(config, legacy=True)
    if not (cfg.adapt.symmetric and cfg.translate.enabled):
        raise ValueError(
            f"{run}: needs both paths (adapt.symmetric and translate.enabled are on in full.yaml)"
        )
    store = ArtifactStore(cfg.artifacts_dir)
    report = lambda metrics, checkpoint=None: None  # noqa: E731  (the networks come from the store)
    roots, keys = translation_stage(cfg, store, report, progress)
    adapted = adapted_networks(cfg, store, roots, keys, report, progress)
    pair, target, labelled, _ = labelling_inputs(cfg, roots, adapted.f_t, adapted.f_s)
    pseudo_cfg = dataclasses.replace(cfg.pseudo, consistency="soft")  # M_consis for every run
    diag = PseudoDiagnostics(conf_weight=cfg.pseudo.conf_weight)
    with torch.no_grad():
        for maps in iter_pixel_maps(
            pair, target, pseudo_cfg, None, cfg.eval.batch_size, progress, f"diagnostics {run.name}"
        ):
            label = labelled.decode_label(labelled.samples[maps.index].label)
            diag.update(maps.pred, maps.m_prob, maps.m_consis, maps.pred_t, maps.pred_s, label)
    return diag


def report_tables(diags: dict[str, PseudoDiagnostics]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(pooled precision by coverage and score, per-class precision at the middle coverage with each
    score's difference to M_prob, disagreement) as DataFrames, mean over runs."""
    pooled, per_class, disagreement = [], [], []
    for run, d in diags.items():
        for q in COVERAGES:
            prec = d.precision_at_coverage(q)
            for s in SCORES:
                pooled.append(
                    {"run": run, "coverage": q, "score": SCORE_NAMES[s], "precision": prec[s]["all"]}
                )
                if q == 0.6:
                    per_class += [
                        {"run": run, "score": SCORE_NAMES[s], "class": c, "precision": prec[s][c]}
                        for c in CLASS_NAMES
                    ]
        disagreement.append({"run": run, **d.disagreement()})
    pooled_df = pd.DataFrame(pooled).pivot_table(index="coverage", columns="score", values="precision")
    per_class_df = pd.DataFrame(per_class).pivot_table(index="class", columns="score", values="precision")
    per_class_df = per_class_df.reindex(CLASS_NAMES)
    return (
        pooled_df[list(SCORE_NAMES.values())],
        per_class_df[list(SCORE_NAMES.values())],
        pd.DataFrame(disagreement).set_index("run"),
    )


def _markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table, numbers as percentages with one decimal."""
    head = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for index, row in frame.iterrows():
        cells = ["" if pd.isna(v) else f"{100 * v:.1f}" for v in row]
        lines.append(
            "| " + " | ".join([f"{index:g}" if isinstance(index, float) else str(index), *cells]) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished `symda run` folders (both paths on)")
    parser.add_argument("--out", type=Path, required=True, help="markdown report; the plot goes beside it")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        diags = {str(run): diagnose_run(run, args.progress) for run in args.runs}
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pooled, per_class, disagreement = report_tables(diags)
    delta = per_class.sub(per_class["M_prob"], axis=0).drop(columns="M_prob").add_prefix("Δ ")
    disagree = (
        pd.DataFrame([d.disagreement_by_class() for d in diags.values()]).mean().rename("paths disagree")
    )
    plot = args.out.with_suffix(".png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in pooled.columns:
        ax.plot(pooled.index * 100, pooled[name] * 100, marker="o", label=name)
    ax.set(xlabel="coverage per predicted class (%)", ylabel="pseudo-label precision (%)",
           title=f"target train, mean of {len(diags)} run(s)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=120)
    lines = [
        f"Pseudo-label diagnostics of the round-0 networks, mean over {len(diags)} run(s): "
        + ", ".join(f"`{r}`" for r in diags)
        + ".",
        f"Generated by `python analysis/pseudo_diagnostics.py {' '.join(str(r) for r in args.runs)} --out {args.out}`.",
        "",
        "Precision (%) of the kept pixels when each predicted class keeps its most confident share "
        "(coverage) under each score; the prediction (argmax of the fused P) is the same for all three:",
        "",
        _markdown(pooled),
        "",
        f"![precision against coverage]({plot.name})",
        "",
        "Per-class precision (%) at 60% coverage, the consistency terms' difference to M_prob, and the "
        "share of the class's true pixels where the two paths disagree:",
        "",
        _markdown(pd.concat([per_class, delta, disagree], axis=1)),
        "",
        "How often the two paths disagree (argmax P_T != argmax P_S, share of labelled pixels), and in "
        "those pixels the share each prediction gets right:",
        "",
        _markdown(disagreement),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
