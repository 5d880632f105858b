"""One true number per fact (issue 30): where a page quotes a figure that a results file holds, the
quote equals the file. Covered: every table row that names its source file in a last column "from"
(the README's ladder and baselines), the selection-study table against symda/select/selection.json,
and the main job's time against bench/bench_main_job.py's recorded output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from docs_check import REPO, doc_files

LINK = re.compile(r"\[[^\]]*\]\(([^)#]+)(?:#[^)]*)?\)")


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of `text` as (header cells, rows of cells), cells stripped."""
    out, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
            out.append((block[0], block[2:]))
        block = []
    return out


def setting_name(cell: str) -> str:
    """A row's setting without a page's gloss: "AdaptSegNet-like (adversarial)" -> "AdaptSegNet-like"."""
    return re.sub(r"\s*\([^)]*\)$", "", cell).strip()


def quoted_rows(doc: Path) -> list[tuple[str, str, str, Path]]:
    """(setting, column, quoted value, results file) for every row of a table whose last column is
    "from" and links a results file."""
    quotes = []
    for header, rows in tables(doc.read_text()):
        if header[-1] != "from":
            continue
        for row in rows:
            link = LINK.search(row[-1])
            assert link, f"{doc.name}: a 'from' cell without a link: {row}"
            source = (doc.parent / link.group(1)).resolve()
            for column, value in zip(header[1:-1], row[1:-1], strict=True):
                quotes.append((setting_name(row[0]), column, value, source))
    return quotes


def value_in(source: Path, setting: str, column: str) -> str | None:
    """The cell of `setting`'s row under `column` in the first table of `source` that has both."""
    for header, rows in tables(source.read_text()):
        if column in header:
            for row in rows:
                if row[0] == setting:
                    return row[header.index(column)]
    return None


QUOTES = [(doc, q) for doc in doc_files() for q in quoted_rows(doc)]


def test_the_readme_quotes_results_files():
    assert sum(doc.name == "README.md" for doc, _ in QUOTES) >= 9  # the ladder at a glance


@pytest.mark.parametrize("doc, quote", QUOTES, ids=[f"{d.name}:{q[0]}:{q[1]}" for d, q in QUOTES])
def test_a_quoted_figure_equals_its_results_file(doc, quote):
    setting, column, value, source = quote
    assert source.is_file(), f"{doc.name}: {setting} quotes {source}, which does not exist"
    found = value_in(source, setting, column)
    assert found == value, f"{doc.name}: {setting} {column} quoted as {value!r}, {source.name} says {found!r}"


def selection_rows(doc: Path) -> list[dict[str, str]]:
    """The rows of `doc`'s selection-study summary table (header starts "sweep kind", has "cells")."""
    return [dict(zip(header, row, strict=True)) for header, rows in tables(doc.read_text())
            if header[0] == "sweep kind" and "cells" in header for row in rows]  # fmt: skip


def test_the_selection_table_equals_the_study_file():
    study = json.loads((REPO / "symda/select/selection.json").read_text())
    rows = selection_rows(REPO / "README.md")
    kinds = {"StarGAN loss weights": "stargan"}  # a row's name where it is not the kind's
    assert {kinds.get(r["sweep kind"], r["sweep kind"]) for r in rows} == set(study), "a row per kind"
    for row in rows:
        kind = study[kinds.get(row["sweep kind"], row["sweep kind"])]
        winner = kind["winner"]
        figures = kind["pooled"][winner]
        (best,) = [v for k, v in row.items() if k.startswith("best validator")]
        assert best == f"`{winner}` {figures['rho']:+.2f}, {figures['regret1']:.2f}", row
        assert row["cells"].split()[0] == str(kind["points"]), row  # "11 of 27 (running)": 11
        goal = row[next(k for k in row if k.startswith("goal"))]
        assert goal.startswith("reached" if kind["goal_reached"] else "not reached"), row


def test_the_main_jobs_time_equals_the_bench_record():
    record = (REPO / "docs/results/performance/main_job.md").read_text()
    median = int(re.search(r"^first: median (\d+) s of", record, re.M).group(1))
    expected = f"{median // 60} min {median % 60} s"
    quoted = 0
    for doc in doc_files():
        text = doc.read_text()
        for m in re.finditer(r"(\d+ min \d+ s)\*{0,2}\s*\(\[[^\]]*\]\(([^)]*main_job\.md)\)", text):
            quoted += 1
            assert m.group(1) == expected, f"{doc.name}: main job {m.group(1)}, the record says {expected}"
    assert quoted >= 1, "the README quotes the main job's time with a link to its record"


def test_the_version_is_one_number_everywhere():
    """pyproject.toml, `symda --version`, the README's version line and the CHANGELOG's current entry."""
    import tomllib

    from symda import __version__

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == version
    assert f"Version {version} ([CHANGELOG](CHANGELOG.md))" in (REPO / "README.md").read_text()
    first = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first == version
    for doc in doc_files():  # no page names a version that does not exist
        for named in re.findall(r"symda (\d+\.\d+(?:\.\d+)?)\b", doc.read_text()):
            assert (
                version.startswith(named)
                or f"## {named}" in (REPO / "CHANGELOG.md").read_text()
                or (f"## {named}.0" in (REPO / "CHANGELOG.md").read_text())
            ), f"{doc.name} names symda {named}, which the CHANGELOG does not list"
