"""What the docs show, checked against the repository (issue 30): commands, repository paths, links.

Plain functions, used by tests/test_docs.py on README.md, CHANGELOG.md and docs/**/*.md and on planted
text. Each `check_*` returns None or one line saying what is wrong.

Commands (`commands_in`, `check_command`): in fenced code blocks (one logical line each, `\\`
continuations joined) and in inline code spans (which may run over lines), every part of a
`&&` / `||` / `;` / ` | ` chain, and the string of a `bash -c "..."`, whose program (after `$ `,
`VAR=value` assignments, `time`/`nohup` and a `.venv/bin/` or `$(BIN)/` prefix) is `symda`, `python`
with a script under tune/, analysis/ or bench/, or `make`. The docs' own conventions are read as the
reader reads them: `a|b` without spaces and `{a,b}` are alternatives (each one is checked), `[...]` is
optional, `...` means "and more" (dropped; `ROW...` is `ROW`), an apostrophe after a letter (V'_DIR) is
a prime, not a quote, and `#` at a word start begins a comment. symda commands are parsed by
`symda.cli.build_parser()`, scripts by their own parser: the script runs under `runpy` with argparse's
`parse_args` patched to parse for real and then stop (every script in tune/, analysis/ and bench/
builds its parser and parses before any work). Failures: an unknown flag or subcommand, a value
outside a flag's choices (placeholders, `<dir>`, `runs/<name>` or all-caps words such as FILE, N,
RUN_DIR, pass any choices), a flag without its value inside the command, a missing script, a script
that fails before it parses. Not failures: a value its type refuses (the docs show refused values on
purpose: `symda synth --n-source 0`), a missing required argument (a doc may name `symda diagnose`
without its `--run`), a flag at the very end without its value (a mention), `--help`. Flags must be
spelled in full (argparse's abbreviations are off). `make` arguments must be targets of the Makefile
or `VAR=value` with a variable the Makefile defines or uses.

Repository paths (`paths_in`, `check_path`): anywhere in the text (prose and code: the docs name paths
bare as often as in backticks), words starting with symda/, tune/, configs/, analysis/, tests/, bench/,
docs/ or .ci/, and the top-level names pyproject.toml, Makefile and the conventional all-caps
documents (TOP_DOCS: README.md, CHANGELOG.md, DESIGN.md ...; a list, since an all-caps name in a
command, REPORT.md, is a placeholder), resolved from the repository root (a bare name also beside the
doc). A `:line` or `::test` suffix is dropped; `{a,b}` is expanded and every expansion must exist; a
glob (`*`) must match at least one file (a glob in the docs names files that are there); a word with
a placeholder (`<`, `$`) is skipped. Outputs and user data (runs/, data/, artifacts/, pretrained/,
/datasets, ~) never match those prefixes, so they are not checked. Link targets and URLs are not
paths here (links are checked as links).

Links (`links_in`, `check_link`): inline `[text](target)`, images and reference definitions outside
code; http(s)/mailto and pure `#anchor` targets are skipped, the `#anchor` is dropped, the rest must
exist relative to the doc's folder.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import io
import logging
import re
import runpy
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
SCRIPT_DIRS = ("tune/", "analysis/", "bench/")
PATH_PREFIXES = ("symda", "tune", "configs", "analysis", "tests", "bench", "docs", r"\.ci")
# Top-level documents by their conventional names (an all-caps name in a command, REPORT.md, is a
# placeholder, so the rule is a list, not a pattern).
TOP_DOCS = (
    "README",
    "CHANGELOG",
    "DESIGN",
    "CONTRIBUTING",
    "ARCHITECTURE",
    "LICENSE",
    "SECURITY",
    "TODO",
    "NOTES",
)


def doc_files() -> list[Path]:
    """README.md, CHANGELOG.md (when there) and every docs/**/*.md."""
    top = [REPO / name for name in ("README.md", "CHANGELOG.md") if (REPO / name).is_file()]
    return top + sorted((REPO / "docs").rglob("*.md"))


# ---------------------------------------------------------------- Markdown: code blocks and spans

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def _split(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(fenced code lines, prose paragraphs), each as (1-based line, text)."""
    code: list[tuple[int, str]] = []
    paras: list[tuple[int, str]] = []
    fence = ""
    para: list[str] = []
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if (
                m
                and m.group(1)[0] == fence[0]
                and len(m.group(1)) >= len(fence)
                and not line.strip()[len(m.group(1)) :]
            ):
                fence = ""
            else:
                code.append((n, line))
            continue
        if m or not line.strip():
            if para:
                paras.append((start, "\n".join(para)))
                para = []
            if m:
                fence = m.group(1)
            continue
        if not para:
            start = n
        para.append(line)
    if para:
        paras.append((start, "\n".join(para)))
    return code, paras


def _spans(paras: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Inline code spans of the prose, as (line of the span's start, content on one line)."""
    found = []
    for start, para in paras:
        for m in SPAN.finditer(para):
            found.append((start + para.count("\n", 0, m.start()), " ".join(m.group(2).split())))
    return found


def _code_commands(code: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Logical lines of the code blocks: `\\` continuations joined, a `$ ` prompt dropped."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    prev = -1
    for n, line in code:
        if pending and n != prev + 1:  # a block ended inside a continuation
            out.append((first, " ".join(pending)))
            pending = []
        if not pending:
            first = n
        prev = n
        stripped = line.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped.strip())
        out.append((first, " ".join(pending)))
        pending = []
    if pending:
        out.append((first, " ".join(pending)))
    return out


# ---------------------------------------------------------------- shell words

PROMPT = re.compile(r"^\s*\$\s+")
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PREFIX = re.compile(r"^(\./)?(\.venv/bin/|\$\(BIN\)/|\$\{BIN\}/|\$BIN/)")
WRAPPERS = {"time", "/usr/bin/time", "nohup", "exec"}
PLACEHOLDER = re.compile(r"<[^<>]*>|^[A-Z][A-Z0-9_']*(\.[a-z]+)?$")


def _is_placeholder(word: str) -> bool:
    return isinstance(word, str) and bool(PLACEHOLDER.search(word))


def _shell_parts(text: str) -> list[str]:
    """The simple commands of a line: a comment cut, split at && || ; & and a spaced | (outside
    quotes). `a|b` without spaces stays one word: the docs' alternatives."""
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        prev = text[i - 1] if i else " "
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        elif c == '"' or (c == "'" and not (prev.isalnum() or prev == "_")):
            quote = c
            cur.append(c)
        elif c == "#" and prev.isspace():
            break
        elif text.startswith(("&&", "||"), i):
            parts.append("".join(cur))
            cur = []
            i += 2
            continue
        elif c == ";" or (c in "|&" and prev.isspace() and (i + 1 == len(text) or text[i + 1].isspace())):
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _words(part: str) -> list[str]:
    """shlex words; an apostrophe after a letter or digit (V'_DIR, S') is kept as a character."""
    part = re.sub(r"<[^<>\n]*>", lambda m: m.group(0).replace(" ", "_"), part)  # <a placeholder>
    return shlex.split(re.sub(r"(?<=[A-Za-z0-9_])'", r"\\'", part))


def _program(words: list[str]) -> list[str]:
    """The words from the program on: assignments, wrappers and the venv prefix dropped."""
    words = list(words)
    while words and (ENV.match(words[0]) or words[0] in WRAPPERS or words[0] == "$"):
        words.pop(0)
    if words:
        words[0] = PREFIX.sub("", words[0])
    return words


def _bash_c(words: list[str]) -> str | None:
    """The command string of a `bash -c STRING` (or sh) anywhere in the words."""
    for i, w in enumerate(words[:-2]):
        if w.rsplit("/", 1)[-1] in ("bash", "sh") and words[i + 1] == "-c":
            return words[i + 2]
    return None


def _tracked(words: list[str]) -> bool:
    if not words:
        return False
    if words[0] in ("symda", "make"):
        return True
    return (
        words[0] in ("python", "python3")
        and len(words) > 1
        and words[1].removeprefix("./").startswith(SCRIPT_DIRS)
    )


def commands_in(markdown: str) -> list[tuple[int, str]]:
    """(line, command) of every symda / python tune|analysis|bench / make command shown."""
    code, paras = _split(markdown)
    found: list[tuple[int, str]] = []

    def visit(line: int, text: str) -> None:
        for part in _shell_parts(PROMPT.sub("", text)):
            try:
                words = _program(_words(part))
            except ValueError:
                words = _program(part.split())
            if (inner := _bash_c(words)) is not None:
                visit(line, inner)
            elif _tracked(words):
                found.append((line, part))

    for line, text in _code_commands(code) + _spans(paras):
        visit(line, text)
    return sorted(found)


def _normalize(words: list[str]) -> list[list[str]]:
    """The docs' conventions undone: `...` dropped, [optional] unwrapped, a|b and {a,b} expanded into
    variants (the i-th variant takes each word's i-th alternative, or its last)."""
    alts: list[list[str]] = []
    for w in words:
        if w.endswith("..."):
            w = w[:-3]
        if w.startswith("[") and (w[1:2] == "-" or w.endswith("]")):
            w = w[1:]
        if w.endswith("]") and "[" not in w:
            w = w[:-1]
        if not w:
            continue
        choices = [a for b in _braces(w) for a in re.split(r"\|(?![^<]*>)", b) if a]
        alts.append(choices or [w])
    n = max((len(a) for a in alts), default=1)
    return [[a[min(i, len(a) - 1)] for a in alts] for i in range(n)]


def _braces(word: str) -> list[str]:
    """Bash brace expansion of one word (every group, cartesian)."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not m:
        return [word]
    return [e for alt in m.group(1).split(",") for e in _braces(word[: m.start()] + alt + word[m.end() :])]


# ---------------------------------------------------------------- argparse, leniently


class _Parsed(Exception):
    """Raised right after a script's parse_args succeeded: nothing of its work runs."""


class _ArgError(Exception):
    pass


def _relax(parser: argparse.ArgumentParser) -> None:
    """No argument required, no abbreviations, in the parser and its subparsers."""
    parser.allow_abbrev = False
    for action in parser._actions:
        action.required = False
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _relax(sub)


@contextlib.contextmanager
def _lenient_argparse(stop_after_parse: bool):
    cls = argparse.ArgumentParser
    saved = {name: cls.__dict__[name] for name in ("error", "_get_value", "_check_value", "parse_args")}

    def error(self, message):
        raise _ArgError(message)

    def get_value(self, action, arg):
        if isinstance(action, argparse._SubParsersAction):
            return saved["_get_value"](self, action, arg)
        try:
            return saved["_get_value"](self, action, arg)
        except argparse.ArgumentError:  # a placeholder, or a bad value the docs show on purpose
            return arg

    def check_value(self, action, value):
        if _is_placeholder(value) and not isinstance(action, argparse._SubParsersAction):
            return
        saved["_check_value"](self, action, value)

    def parse_args(self, args=None, namespace=None):
        _relax(self)
        result = saved["parse_args"](self, args, namespace)
        if stop_after_parse:
            raise _Parsed
        return result

    patches = {"error": error, "_get_value": get_value, "_check_value": check_value, "parse_args": parse_args}
    for name, fn in patches.items():
        setattr(cls, name, fn)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for name, fn in saved.items():
            setattr(cls, name, fn)


def _judge(message: str, args: list[str]) -> str | None:
    """An argparse error, or None for a flag named at the very end without its value (a mention)."""
    if (
        re.search(r"expected (one|at least one|\d+) arguments?", message)
        and args
        and args[-1].startswith("-")
    ):
        return None
    return message


@functools.cache
def _symda_parser() -> argparse.ArgumentParser:
    from symda.cli import build_parser

    return build_parser()


@functools.cache
def _check_symda(args: tuple[str, ...]) -> str | None:
    try:
        with _lenient_argparse(stop_after_parse=False):
            _symda_parser().parse_args(list(args))
    except _ArgError as err:
        return _judge(str(err), list(args))
    except SystemExit as err:  # --help, --version
        return None if err.code in (0, None) else f"exit status {err.code}"
    return None


@functools.cache
def _check_script(script: str, args: tuple[str, ...]) -> str | None:
    path = REPO / script
    if not path.is_file():
        return f"{script}: no such script"
    if "__name__ == " not in path.read_text():
        return f"{script}: not a script (no __main__ block)"
    argv, sys_path = sys.argv, list(sys.path)
    root = logging.getLogger()
    log_state = (list(root.handlers), root.level, logging.getLogger("symda").level)
    sys.argv = [str(path), *args]
    try:
        with _lenient_argparse(stop_after_parse=True):
            runpy.run_path(str(path), run_name="__main__")
    except _Parsed:
        return None
    except _ArgError as err:
        return _judge(str(err), list(args))
    except SystemExit as err:
        return None if err.code in (0, None) else f"{script} exited ({err.code}) before parsing its arguments"
    except Exception as err:  # noqa: BLE001 - reported as the problem
        return f"{script} raised {type(err).__name__} before parsing its arguments: {err}"
    finally:
        sys.argv = argv
        sys.path[:] = sys_path
        root.handlers[:] = log_state[0]
        root.setLevel(log_state[1])
        logging.getLogger("symda").setLevel(log_state[2])
    return f"{script} ran to its end without calling argparse's parse_args"


@functools.cache
def _makefile() -> tuple[frozenset[str], frozenset[str]]:
    """The Makefile's targets and the variables it defines or uses."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    targets: set[str] = set()
    variables = set(re.findall(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]", text))
    for line in text.splitlines():
        if line.startswith("\t") or line.lstrip().startswith("#"):
            continue
        if m := re.match(
            r"^\s*(?:override\s+|export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?|:|::|\+|!)?=", line
        ):
            variables.add(m.group(1))
        elif m := re.match(r"^([^\s:=#][^:=#]*?)\s*::?(?!=)", line):
            names = m.group(1).split()
            if names == [".PHONY"]:
                names = line.split(":", 1)[1].split()
            targets.update(n for n in names if "$" not in n and "%" not in n and not n.startswith("."))
    return frozenset(targets), frozenset(variables)


def _check_make(args: list[str]) -> str | None:
    targets, variables = _makefile()
    errors = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("-C", "-f", "-I", "-o", "-W"):
            skip = True
        elif a.startswith("-") or _is_placeholder(a):
            continue
        elif m := ENV.match(a):
            name = m.group(0)[:-1]
            if name not in variables:
                errors.append(f"make: the Makefile has no variable {name}")
        elif a not in targets:
            errors.append(f"make: the Makefile has no target {a!r}")
    return "; ".join(errors) or None


def check_command(command: str) -> str | None:
    """None if every tracked part of `command` parses, else what does not."""
    errors: list[str] = []
    for part in _shell_parts(PROMPT.sub("", command)):
        try:
            words = _program(_words(part))
        except ValueError as err:
            errors.append(f"cannot split into words: {err}")
            continue
        if (inner := _bash_c(words)) is not None:
            if err := check_command(inner):
                errors.append(err)
            continue
        if not _tracked(words):
            continue
        for variant in _normalize(words):
            if variant[0] == "symda":
                err = _check_symda(tuple(variant[1:]))
            elif variant[0] == "make":
                err = _check_make(variant[1:])
            else:
                err = _check_script(variant[1].removeprefix("./"), tuple(variant[2:]))
            if err and err not in errors:
                errors.append(err)
    return "; ".join(errors) or None


# ---------------------------------------------------------------- paths

PATH = re.compile(
    r"(?<![\w./~$-])(?:(?:" + "|".join(PATH_PREFIXES) + r")/(?:[\w./*<>:+@-]|\{[^{}\s]*\})*"
    r"|pyproject\.toml|Makefile|(?:" + "|".join(TOP_DOCS) + r")\.md)(?![\w/-])"
)
LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)"
)
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")


def _blank(text: str, pattern: re.Pattern, group: int = 0) -> str:
    """`text` with the matches (or one group of them) replaced by spaces, lines kept."""

    def sub(m: re.Match) -> str:
        s, e = m.span(group)
        return (
            m.group(0)[: s - m.start()] + re.sub(r"[^\n]", " ", m.group(group)) + m.group(0)[e - m.start() :]
        )

    return pattern.sub(sub, text)


def paths_in(markdown: str) -> list[tuple[int, str]]:
    """(line, path) of every repository path the text names (link targets and URLs aside)."""
    text = _blank(_blank(_blank(markdown, URL), LINK, 1), REFDEF, 1)
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in PATH.finditer(line):
            path = m.group(0).rstrip(".:")
            if path:
                found.append((n, path))
    return found


def check_path(path: str, doc_dir: Path = REPO) -> str | None:
    """None if `path` (from the repository root) exists, or is a placeholder; else the problem."""
    if any(c in path for c in "<>$"):
        return None
    file_part = path.split(":", 1)[0].removesuffix("...")
    if not file_part:
        return None
    for expanded in _braces(file_part):
        if any(c in expanded for c in "*?["):
            if not glob.glob(expanded, root_dir=REPO, recursive=True):
                return f"{path}: matches no file"
        elif not (REPO / expanded).exists() and not ("/" not in expanded and (doc_dir / expanded).exists()):
            return f"{path}: no such file or folder" + (f" ({expanded})" if expanded != file_part else "")
    return None


# ---------------------------------------------------------------- links


def links_in(markdown: str) -> list[tuple[int, str]]:
    """(line, target) of every link, image and reference definition outside code."""
    code, paras = _split(markdown)
    found = []
    for start, para in paras:
        text = _blank(para, SPAN)
        for pattern in (LINK, REFDEF):
            for m in pattern.finditer(text):
                found.append((start + text.count("\n", 0, m.start(1)), m.group(1)))
    return sorted(found)


def check_link(target: str, doc_dir: Path) -> str | None:
    """None if a relative link resolves from `doc_dir` (external and pure-anchor links pass)."""
    if not target or target.startswith("#") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
        return None
    file_part = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
    resolved = (REPO / file_part.lstrip("/")) if file_part.startswith("/") else (doc_dir / file_part)
    if not resolved.exists():
        return f"link target {target} does not exist"
    return None


# ---------------------------------------------------------------- a whole doc


def problems(doc: Path, kind: str, text: str | None = None) -> list[str]:
    """'FILE:LINE: problem' for each command, path or link (kind) of `doc` that does not check out."""
    text = doc.read_text() if text is None else text
    try:
        name = str(doc.relative_to(REPO))
    except ValueError:
        name = str(doc)
    out = []
    if kind == "commands":
        for line, cmd in commands_in(text):
            if err := check_command(cmd):
                out.append(f"{name}:{line}: `{cmd}`: {err}")
    elif kind == "paths":
        for line, path in paths_in(text):
            if err := check_path(path, doc.parent):
                out.append(f"{name}:{line}: {err}")
    elif kind == "links":
        for line, target in links_in(text):
            if err := check_link(target, doc.parent):
                out.append(f"{name}:{line}: {err}")
    else:
        raise ValueError(kind)
    return out
