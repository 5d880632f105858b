"""The docs show only what exists (issue 30): every command parses with the project's own parsers,
every repository path exists, every relative link resolves. The rules are in tests/docs_check.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_check import (
    REPO,
    check_command,
    check_link,
    check_path,
    commands_in,
    doc_files,
    links_in,
    paths_in,
    problems,
)

DOCS = doc_files()
IDS = [str(d.relative_to(REPO)) for d in DOCS]


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_command_in_the_docs_parses(doc: Path) -> None:
    found = problems(doc, "commands")
    assert not found, "commands the parsers refuse:\n" + "\n".join(found)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_repository_path_in_the_docs_exists(doc: Path) -> None:
    found = problems(doc, "paths")
    assert not found, "paths that do not exist:\n" + "\n".join(found)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_in_the_docs_resolves(doc: Path) -> None:
    found = problems(doc, "links")
    assert not found, "broken links:\n" + "\n".join(found)


PLANTED = """\
# Planted

Run `symda run --no-such-flag` or `symda frobnicate --config CFG`.

```bash
python tune/sweep_threshold.py --bogus   # a bad flag
$ make no-such-target
FOO=1 .venv/bin/python analysis/ablation_table.py runs/x \\
    --out runs/x.md --colour
python tune/no_such_script.py
make sweep NO_SUCH_VAR=1 && symda evaluate --run DIR --frobnicate
```

The config is configs/does_not_exist.yaml, next to `configs/synthcity/{full,nope}.yaml` and
`tests/test_nothing_*.py`; see [the design](NOT_THERE.md) and ![a plot](docs/results/none.png).
"""


def test_the_checker_reports_planted_problems_with_file_and_line(tmp_path: Path) -> None:
    doc = tmp_path / "planted.md"
    doc.write_text(PLANTED)
    commands = "\n".join(problems(doc, "commands"))
    assert f"{doc}:3: `symda run --no-such-flag`: unrecognized arguments: --no-such-flag" in commands
    assert (
        f"{doc}:3: `symda frobnicate --config CFG`: argument command: invalid choice: 'frobnicate'"
        in commands
    )
    assert f"{doc}:6: `python tune/sweep_threshold.py --bogus`: unrecognized arguments: --bogus" in commands
    assert f"{doc}:7: `make no-such-target`: make: the Makefile has no target 'no-such-target'" in commands
    assert f"{doc}:8: " in commands and "unrecognized arguments: --colour" in commands
    assert f"{doc}:10: `python tune/no_such_script.py`: tune/no_such_script.py: no such script" in commands
    assert f"{doc}:11: `make sweep NO_SUCH_VAR=1`: make: the Makefile has no variable NO_SUCH_VAR" in commands
    assert (
        f"{doc}:11: `symda evaluate --run DIR --frobnicate`: unrecognized arguments: --frobnicate" in commands
    )
    assert len(commands.splitlines()) == 8

    paths = "\n".join(problems(doc, "paths"))
    assert f"{doc}:14: configs/does_not_exist.yaml: no such file or folder" in paths
    assert (
        f"{doc}:14: configs/synthcity/{{full,nope}}.yaml: no such file or folder (configs/synthcity/nope.yaml)"
        in paths
    )
    assert f"{doc}:15: tests/test_nothing_*.py: matches no file" in paths
    assert f"{doc}:10: tune/no_such_script.py: no such file or folder" in paths
    assert len(paths.splitlines()) == 4

    links = "\n".join(problems(doc, "links"))
    assert f"{doc}:15: link target NOT_THERE.md does not exist" in links
    assert f"{doc}:15: link target docs/results/none.png does not exist" in links
    assert len(links.splitlines()) == 2


def test_commands_are_found_with_the_docs_conventions() -> None:
    text = """\
Inline `make baselines PRESET=v1
SEEDS="0"` spans lines; `symda/terms/` is a path, not a command; `python -m pytest` is not ours.

```
$ .venv/bin/symda run --config configs/synthcity/quick.yaml \\
      --set seed=1   # comment && not a command
cd /tmp && $(BIN)/python tune/run_ablation.py --rows full; make test | tee log
ray job submit -- bash -c "cd $PWD && python tune/sweep_threshold.py --resume"
```
"""
    assert commands_in(text) == [
        (1, 'make baselines PRESET=v1 SEEDS="0"'),
        (5, ".venv/bin/symda run --config configs/synthcity/quick.yaml --set seed=1"),
        (7, "$(BIN)/python tune/run_ablation.py --rows full"),
        (7, "make test"),
        (8, "python tune/sweep_threshold.py --resume"),
    ]


@pytest.mark.parametrize(
    "command",
    [
        "symda --help",
        "symda run --help",
        "symda --version",
        "symda diagnose",  # a mention: required arguments are not required
        "symda evaluate --checkpoint",  # a flag named at the end, without its value
        "symda evaluate --config CFG --checkpoint F_T.pt [--partner F_S.pt --partner-data V'_DIR] [--color]",
        "symda translate apply --checkpoint t.pt --data ROOT --kind gta5|cityscapes --to target|source --out DIR",
        "symda train|run --out <dir>",
        "symda train --config configs/synthcity/{source_only,oracle}.yaml --set seed=S",
        "symda synth --n-source 0",  # a bad value the docs show on purpose: a value, not a flag
        "$ FOO=1 python tune/sweep_threshold.py --select-by miou|<validator> --num-samples N",
        "python tune/sweep_{threshold,adversarial,stargan}.py --help",
        "python tune/self_training_study.py --preset screen --seeds 0 1 2 --rows ROW...",
        "python analysis/pseudo_diagnostics.py RUN ... --out REPORT.md",
        "python tune/validator_study.py --study <the study file> --no-ray",
        'make ladder ROWS="minent_like advent_like" SET="--set scale.use_gpu=true"',
        "make baselines ladder PRESET=v1 SEEDS=0 EXPERIMENTS=source_only",
    ],
)
def test_good_commands_pass(command: str) -> None:
    assert check_command(command) is None


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("python tune/sweep_threshold.py --select-by proxy", "argument --select-by: invalid choice: 'proxy'"),
        ("symda run --conf x.yaml", "unrecognized arguments: --conf x.yaml"),  # no abbreviations
        ("symda translate apply|frob", "invalid choice: 'frob'"),
        ("python bench/bench_main_job.py --work DIR --runs", None),
        ("python bench/bench_main_job.py --runs --work DIR", "argument --runs: expected one argument"),
    ],
)
def test_bad_commands_are_named(command: str, error: str | None) -> None:
    result = check_command(command)
    if error is None:
        assert result is None
    else:
        assert result is not None and error in result


def test_paths_and_links_rules() -> None:
    assert paths_in("see symda/cli.py:498, tests/test_cli.py::test_x and `runs/x/y.md`.") == [
        (1, "symda/cli.py:498"),
        (1, "tests/test_cli.py::test_x"),
    ]
    assert check_path("symda/cli.py:498") is None
    assert check_path("tests/test_cli.py::test_x") is None
    assert check_path("configs/study/selection_<kind>.yaml") is None  # a placeholder
    assert check_path("tests/test_fuzz_*.py") is None
    assert check_path("DESIGN.md") == "DESIGN.md: no such file or folder"
    assert paths_in("[x](docs/nope.md) https://example.org/docs/nope.md") == []
    assert links_in("`[x](nope.md)` [a](b.md#c) ![i](d.png)\n\n```\n[y](nope.md)\n```\n[r]: e.md\n") == [
        (1, "b.md#c"),
        (1, "d.png"),
        (6, "e.md"),
    ]
    assert check_link("https://example.org/x", REPO) is None
    assert check_link("#anchor", REPO) is None
    assert check_link("docs/architecture.md#adding-a-method", REPO) is None
    assert check_link("architecture.md", REPO / "docs") is None
    assert check_link("architecture.md", REPO) == "link target architecture.md does not exist"


SCRIPTS = sorted(
    p.relative_to(REPO).as_posix() for d in ("tune", "analysis", "bench") for p in (REPO / d).glob("*.py")
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_parses_its_help_before_any_work(script: str) -> None:
    """A script whose parser cannot even be reached (an import or a default that no longer exists)
    is broken for every reader of its docstring, named in the docs or not."""
    assert check_command(f"python {script} --help") is None
