"""Every path the prose names exists, and nothing points at notes outside the repository.

Read: README.md and docs/*.md whole, and the comments and docstrings of every Python file under
agent/, lab/, tests/ and scripts/ (and the comments of the shell scripts). A path there
(agent/…py, tests/…py, lab/…py, scripts/…, docs/….md, a Markdown link, a module of the three
layers written agent.core.x) must name something in the repository, and the design facts a
comment leans on must be in docs/, not in a document the repository does not hold.
Standard library only: part of the pure suite.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("agent", "lab", "tests", "scripts")
SKIP_PARTS = {"__pycache__", "golden"}

# Not preceded by a path or word character: /etc/systemd/..., sipagent/porch and URLs are not ours.
PATH = re.compile(
    r"(?<![\w./-])("
    r"(?:agent|tests|lab)/[\w./-]*?\w\.py"
    r"|scripts/[\w./-]*[\w/]"
    r"|docs/[\w./-]*?\w\.(?:md|png)"
    r")(?![\w*{])"
)
MODULE = re.compile(r"(?<![\w.])agent\.(?:core|adapters|config)(?:\.\w+)+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Notes that lived outside the repository; their facts belong in docs/ now.
OUTSIDE_NAMES = [
    "FIELD" + "-NOTES",
    r"\bBRIEF\.md",
    r"\bSTYLE\.md",
    r"\bthe " + r"brief\b",
    "/work/shared",
]
OUTSIDE = re.compile("|".join(OUTSIDE_NAMES), re.IGNORECASE)


def code_files(root: Path) -> Iterator[Path]:
    for top in CODE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".py", ".sh") or not path.is_file():
                continue
            parts = set(path.parts)
            if parts & SKIP_PARTS or any(p.endswith(".egg-info") for p in parts):
                continue
            yield path


def prose_of_python(text: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring."""
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                value = body[0].value.value
                if isinstance(value, str):
                    yield body[0].lineno, value


def prose_of_shell(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            yield number, line


def module_exists(root: Path, dotted: str) -> bool:
    """Every part up to the first module is a package or a module (one letter: a placeholder)."""
    here = root
    for part in dotted.split("."):
        if len(part) == 1:
            return True
        if (here / f"{part}.py").is_file():
            return True  # what follows is a name inside the module
        if not (here / part / "__init__.py").is_file():
            return part in (here / "__init__.py").read_text() if here != root else False
        here = here / part
    return True


def problems_in(root: Path, where: str, text: str, folder: Path) -> Iterator[str]:
    for match in OUTSIDE.finditer(text):
        yield f"{where}: names a document outside the repository ({match.group(0)!r}): use docs/"
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if not (root / path).exists():
            yield f"{where}: {path} does not exist"
    for match in MODULE.finditer(text):
        if not module_exists(root, match.group(0)):
            yield f"{where}: module {match.group(0)} does not exist"
    for match in LINK.finditer(text):
        target = match.group(1).split("#")[0]
        if target and not re.match(r"[a-z]+:", target) and not (folder / target).exists():
            yield f"{where}: link to {target} goes nowhere"


def stale_references(root: Path) -> list[str]:
    found: list[str] = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if doc.is_file():
            for number, line in enumerate(doc.read_text().splitlines(), 1):
                where = f"{doc.relative_to(root)}:{number}"
                found += problems_in(root, where, line, doc.parent)
    for path in code_files(root):
        text = path.read_text()
        prose = prose_of_python(text) if path.suffix == ".py" else prose_of_shell(text)
        for number, chunk in prose:
            where = f"{path.relative_to(root)}:{number}"
            found += problems_in(root, where, chunk, path.parent)
    return found


def test_readme_docs_and_comments_name_only_paths_that_exist() -> None:
    found = stale_references(ROOT)
    assert not found, "\n".join(found)


def _tree(tmp_path: Path, comment: str, readme: str = "") -> Path:
    (tmp_path / "agent" / "core").mkdir(parents=True)
    (tmp_path / "agent" / "__init__.py").write_text("")
    (tmp_path / "agent" / "core" / "__init__.py").write_text("")
    (tmp_path / "agent" / "core" / "real.py").write_text(f'"""Doc."""\n\nX = 1  # {comment}\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pjsip.md").write_text("# facts\n")
    (tmp_path / "README.md").write_text(readme)
    return tmp_path


@pytest.mark.parametrize(
    ("comment", "readme"),
    [
        ("see agent/core/gone.py", ""),
        ("measured: docs/nowhere.md", ""),
        ("as the " + "FIELD-NOTES" + ".md say", ""),
        ("see the " + "brief's rules", ""),
        ("agent.core.gone decides", ""),
        ("", "tests are in `tests/test_old.py`"),
        ("", "run `scripts/bench_old.py`"),
        ("", "see [the notes](docs/missing.md)"),
    ],
)
def test_a_stale_reference_is_found(tmp_path: Path, comment: str, readme: str) -> None:
    assert stale_references(_tree(tmp_path, comment, readme))


@pytest.mark.parametrize(
    "comment",
    [
        "see agent/core/real.py and docs/pjsip.md",
        "agent.core.real.X decides",
        "not ours: /etc/systemd/system/x.service, sipagent/tests/a.py, https://x.org/lab/y.py",
        "a glob: tests/test_*.py",
    ],
)
def test_a_true_reference_passes(tmp_path: Path, comment: str) -> None:
    assert stale_references(_tree(tmp_path, comment, "[pjsip](docs/pjsip.md)")) == []
