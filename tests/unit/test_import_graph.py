"""The house's import rules, read from the source (every import outside ``if
TYPE_CHECKING:``, function-local ones included):

* no import cycles between callgate's modules;
* the layers: the domain imports nothing of ours but the exceptions; the store and the
  providers only the domain (and small leaf modules); config only the domain and the
  policies; the engine no shell and not the gateway;
* no shell (the API, the CLI, the server, the webhook routes, the demo) imports
  ``callgate.store`` or reaches for a gateway's ``.store``: they go through the
  Gateway and its services;
* ``from callgate import Client`` loads neither the engine, the store, the providers
  nor FastAPI.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: what each layer may import of callgate's (beside itself)
LAYERS = {
    "callgate.domain": {"callgate.exceptions"},
    "callgate.policies": {"callgate.domain"},
    "callgate.store": {"callgate.domain", "callgate.exceptions"},
    "callgate.providers": {
        "callgate.domain",
        "callgate.exceptions",
        "callgate.clock",
        "callgate.jsonlimits",
    },
    "callgate.client": {"callgate.domain", "callgate.exceptions"},
    "callgate.config": {"callgate.domain", "callgate.exceptions", "callgate.policies"},
}
SHELLS = (
    "callgate.api",
    "callgate.cli",
    "callgate.server",
    "callgate.webhooks.routes",
    "callgate.demo",
)
#: what the engine must never import: the shells and the façade over it
ABOVE_THE_ENGINE = ("callgate.gateway", "callgate.services", *SHELLS)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.joinpath("callgate").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """The callgate modules ``name`` imports (``from pkg import sub``: the submodule)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            children: list[ast.AST] = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            subs = {f"{base}.{a.name}" for a in node.names} & known.keys()
            out.update(subs or {base})
        for child in children:
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in known and m != name}


@cache
def graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_imports(name, path)) for name, path in modules().items()}


def _cycles(g: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_graph_is_read() -> None:
    g = graph()
    assert "callgate.store.base" in g["callgate.store.sql"]  # a plain import is seen
    assert "callgate.cli.batch" in g["callgate.cli.app"]  # from pkg import name in sub
    assert len(g) > 80


def test_no_import_cycles() -> None:
    assert _cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycles({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset()}) == [["a", "b"]]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    allowed = LAYERS[layer]
    wrong = {
        (m, d)
        for m, deps in graph().items()
        if _in(m, layer)
        for d in deps
        if not _in(d, layer) and not any(_in(d, a) for a in allowed)
    }
    assert wrong == set()


def test_the_engine_imports_no_shell_and_not_the_gateway() -> None:
    wrong = {
        (m, d)
        for m, deps in graph().items()
        if _in(m, "callgate.engine")
        for d in deps
        if any(_in(d, above) for above in ABOVE_THE_ENGINE)
    }
    assert wrong == set()


def test_the_engine_knows_no_vendor() -> None:
    """Vendors' error codes stay behind the provider seam: the engine sees the Provider
    protocol and the exchange records, and acts on what a result says (``suppress``),
    never on a vendor's codes (twilio_mapping applied to every vendor once)."""
    seam = {"callgate.providers", "callgate.providers.base", "callgate.providers.audit"}
    wrong = {
        (m, d)
        for m, deps in graph().items()
        if _in(m, "callgate.engine")
        for d in deps
        if _in(d, "callgate.providers") and d not in seam
    }
    assert wrong == set()


def test_no_shell_imports_the_store() -> None:
    wrong = {
        (m, d)
        for m, deps in graph().items()
        if any(_in(m, s) for s in SHELLS)
        for d in deps
        if _in(d, "callgate.store")
    }
    assert wrong == set()


def test_no_shell_reaches_for_the_store() -> None:
    found = []
    for name, path in modules().items():
        if not any(_in(name, s) for s in SHELLS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert found == []


def test_the_client_loads_light() -> None:
    code = (
        "import sys; from callgate import Client, AsyncClient; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'sqlalchemy', 'psycopg', 'twilio') or m.startswith("
        "('callgate.engine', 'callgate.store', 'callgate.providers', 'callgate.gateway')));"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
