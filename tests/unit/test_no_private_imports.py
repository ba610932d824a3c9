"""No module of trialkit imports another module's private (``_``-prefixed) name: a name
shared across modules is part of what its module offers, so it is public (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "trialkit"


def private_imports(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trialkit"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} {alias.name}")
    return found


def test_no_module_imports_a_private_name_from_another() -> None:
    assert private_imports() == []


def test_the_check_sees_a_private_import_and_lets_dunders_and_other_packages_be(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.py").write_text("from trialkit.services.envelopes import _hidden, shown\n"
                                   "from trialkit import __version__\n"
                                   "from os import _exit\n")
    assert private_imports(tmp_path) == ["a.py:1 _hidden"]
