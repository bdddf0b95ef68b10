"""The code's shape, enforced: the domain imports no framework or store, and only
``lineage_faust/faust_patches`` touches a private name of faust, aiokafka or mode."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = [ROOT / "lineage_faust", ROOT / "api"]
PATCHES = ROOT / "lineage_faust" / "faust_patches"
FRAMEWORKS = ("faust", "aiokafka", "mode")
# what the pure domain may not import: frameworks, clients, stores, and our own outer layers
NOT_IN_DOMAIN = (
    *FRAMEWORKS,
    "fastapi",
    "starlette",
    "uvicorn",
    "cassandra",
    "sqlite3",
    "httpx",
    "lineage_faust.store",
    "lineage_faust.worker",
    "lineage_faust.kafka",
    "lineage_faust.faust_patches",
    "lineage_faust.cli",
    "api",
)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else path.name


def sources(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(root.rglob("*.py"))


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{shown(path)}:{line}: imports {name}"
        for name, line in imported(tree)
        if any(name == bad or name.startswith(f"{bad}.") for bad in NOT_IN_DOMAIN)
    ]


def test_the_domain_imports_no_framework_client_or_store() -> None:
    found = [
        v for path in sources(ROOT / "lineage_faust" / "domain") for v in forbidden_imports(path)
    ]
    assert found == [], "\n".join(found)


def test_the_domain_check_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import faust\nfrom lineage_faust.store import Store\n")
    assert len(forbidden_imports(bad)) == 2


def private_names_of(package: str) -> set[str]:
    """Every private (one leading underscore) name a package defines: functions, classes,
    attributes set on ``self`` or in a class body."""
    # (faust replaces its module with a lazy one without __spec__: import it and ask __path__)
    names: set[str] = set()
    for path in sources(Path(next(iter(importlib.import_module(package).__path__)))):
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


FOREIGN = set().union(*(private_names_of(p) for p in FRAMEWORKS))


def private_uses(path: Path) -> list[str]:
    """Uses of a private name of faust/aiokafka/mode: ``x._name`` on anything but ``self``
    or ``cls``, ``getattr(x, "_name")``, and imports of private modules or names."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and node.attr in FOREIGN:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in FOREIGN
        ):
            name = node.args[1].value
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in FRAMEWORKS
        ):
            parts = node.module.split(".") + [a.name for a in node.names]
            private = [p for p in parts if p.startswith("_") and not p.startswith("__")]
            name = private[0] if private else None
        if name:
            found.append(f"{shown(path)}:{node.lineno}: {name}")
    return found


def test_only_the_patches_package_touches_private_names_of_faust_aiokafka_or_mode() -> None:
    found = [
        v for path in sources(*OURS) if PATCHES not in path.parents for v in private_uses(path)
    ]
    assert found == [], "private names of faust/aiokafka/mode outside faust_patches:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "code",
    [
        "def f(stream, e):\n    stream._set_current_event(e)\n",
        "def f(app):\n    return getattr(app.consumer, '_buffered_partitions', ())\n",
        "from aiokafka.consumer.fetcher import _RecordsFetcher\n",
    ],
)
def test_the_private_name_check_catches_a_use(tmp_path: Path, code: str) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(code)
    assert private_uses(bad), code


def test_the_patches_really_use_private_names() -> None:
    # the check has something to find: the patches package itself is full of them
    assert sum(len(private_uses(path)) for path in sources(PATCHES)) > 10
