"""No module of trialkit uses another module's private (``_``-prefixed) name, neither by
importing it (``from m import _x``) nor through the module (``m._x``): a name shared across
modules is part of what its module offers, so it is public (issue 10). The same holds for
the libraries whose private attributes we once used (fpdf2, SQLAlchemy, Textual)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "trialkit"
LIBRARIES = ("trialkit", "fpdf", "sqlalchemy", "sqlmodel", "textual")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _ours(module: str) -> bool:
    return module.split(".")[0] in LIBRARIES


def _is_module(package: str, name: str, root: Path) -> bool:
    """Whether ``from package import name`` binds a module of ``root`` (trialkit's tree)."""
    parts = package.split(".")[1:] + [name]
    base = root.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def private_uses(root: Path = SRC) -> list[str]:
    found: list[tuple[Path, int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(root)
        modules: set[str] = set()  # names this file binds to a module
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name):
                        modules.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and _ours(node.module):
                for alias in node.names:
                    if _private(alias.name):
                        found.append((where, node.lineno, alias.name))
                    elif node.module.startswith("trialkit") and _is_module(
                        node.module, alias.name, root
                    ):
                        modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = _dotted(node.value)
                if owner is not None and owner.split(".")[0] in modules:
                    found.append((where, node.lineno, f"{owner}.{node.attr}"))
    return [f"{where}:{line} {name}" for where, line, name in sorted(found)]


def test_no_module_uses_a_private_name_of_another() -> None:
    assert private_uses() == []


def test_the_check_sees_private_imports_and_attributes_and_lets_the_rest_be(
    tmp_path: Path,
) -> None:
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "__init__.py").write_text("")
    (tmp_path / "domain" / "clock.py").write_text("")
    (tmp_path / "a.py").write_text(
        "import fpdf\n"
        "import trialkit.domain.codes as codes\n"
        "from os import _exit\n"
        "from trialkit import __version__\n"
        "from trialkit.domain import clock\n"
        "from trialkit.domain.clock import _hidden, shown\n"
        "from trialkit.domain.clock import Clock\n"
        "fpdf._out(1)\n"
        "clock._tick\n"
        "codes._alphabet\n"
        "Clock._now\n"
        "self._own\n"
        "clock.__name__\n"
    )
    assert private_uses(tmp_path) == [
        "a.py:6 _hidden",
        "a.py:8 fpdf._out",
        "a.py:9 clock._tick",
        "a.py:10 codes._alphabet",
    ]
