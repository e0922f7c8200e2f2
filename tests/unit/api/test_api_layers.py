"""The layer rules of docs/architecture.md, checked on the source: imports point down only,
the API never reaches into the runtime, and no module imports itself back."""

from __future__ import annotations

import ast
import asyncio
import sys
from dataclasses import fields
from pathlib import Path

import tomllib

from service.api.options import generation_options
from service.api.schemas import Options
from service.engine import GenerationOptions

REPO = Path(__file__).resolve().parents[3]
SERVICE = REPO / "service"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the service modules it imports (anywhere in the file).

    ``from pkg import sub`` is an edge to the submodule ``pkg.sub`` when there is one
    (not to ``pkg``'s __init__), as import linters count it.
    """
    paths = {_module_name(p): p for p in SERVICE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def test_the_api_never_imports_the_runtime() -> None:
    offenders = {
        name: sorted(m for m in deps if m.startswith("service.runtime"))
        for name, deps in _imports().items()
        if name.startswith("service.api")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_imports_point_down_only() -> None:
    # service.text is shared by the engine layer only; settings/cli sit at the top.
    forbidden = {
        "service.runtime": ("service.api", "service.engine", "service.text"),
        "service.engine": ("service.api",),
        "service.text": ("service.api", "service.engine", "service.runtime"),
    }
    for name, deps in _imports().items():
        for layer, above in forbidden.items():
            if name.startswith(layer):
                assert not [d for d in deps if d.startswith(above)], (name, deps)


def test_no_import_cycles() -> None:
    graph = _imports()
    # Package __init__ re-exports are edges from the package to its modules; a module
    # importing its own package's __init__ is the cycle we look for.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_every_request_option_reaches_the_generation_options() -> None:
    names = {f.name for f in fields(GenerationOptions)}
    for field in Options.model_fields:
        if field != "timeout_ms":
            assert field in names, field
            annotation = Options.model_fields[field].annotation
            value: object = {float | None: 0.5, bool | None: True}.get(annotation, 1)
            options = generation_options(Options.model_validate({field: value}))
            assert getattr(options, field) == value, field


def test_python_requirement_is_the_one_the_code_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["mypy"]["python_version"] == "3.11"
    # The engine catches the builtin TimeoutError for asyncio timeouts: one class from 3.11.
    assert asyncio.TimeoutError is TimeoutError
    assert sys.version_info >= (3, 11)
