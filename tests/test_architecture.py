"""The shape of the house: imports run one way, modules stay small, and
only the model's own modules touch the model's private attributes."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import xpnet as xn

SRC = pathlib.Path(xn.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))
# Sequential is one class written in three modules, as Keras 3 writes its
# Model over a Trainer: the layer stack and step, compile/fit/predict, and
# the weights (get/set, files, penalties, summary).
MODEL_MODULES = {"model.py", "_trainer.py", "_weights.py"}
MAX_LINES = 450


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: pathlib.Path, known: set[str]) -> set[str]:
    """The xpnet modules `path` imports, at the top or inside functions."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = module_name(path) if path.name == "__init__.py" else package
                anchor = ".".join(anchor.split(".")[: len(anchor.split(".")) - node.level + 1])
                base = f"{anchor}.{base}".rstrip(".")
            # "from xpnet import layers" imports the module xpnet.layers;
            # "from xpnet.layers import Dense" imports xpnet.layers
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(module_name(path))
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in `graph` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    known = {module_name(p) for p in MODULES}
    graph = {module_name(p): imported_modules(p, known) for p in MODULES}
    # A package's __init__ re-exporting its modules is not a cycle with them;
    # "import xpnet" from a submodule is (it runs every module).
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".") or m == "xpnet"}
    return graph


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_model_does_not_import_io_and_io_imports_the_model():
    graph = import_graph()
    assert "xpnet.io" not in graph["xpnet.model"]
    assert "xpnet.model" in graph["xpnet.io"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"


def model_private_names() -> set[str]:
    """Private attributes of a fitted, compiled model and of its class."""
    model = xn.Sequential([xn.layers.Dense(2)], seed=0)
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    names = set(vars(model)) | {n for cls in type(model).__mro__ for n in vars(cls)}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_model_accesses(source: str, private: set[str]) -> list[str]:
    """``something._name`` where ``_name`` is private to the model and
    ``something`` is not ``self`` (a class may use its own attributes)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr in private):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_model_touches_its_private_attributes():
    private = model_private_names()
    assert {"_placement", "_prepare", "_shuffle_rng"} <= private
    offenders = {
        path.name: hits
        for path in MODULES
        if path.name not in MODEL_MODULES
        and (hits := private_model_accesses(path.read_text(), private))
    }
    assert offenders == {}


def test_the_private_access_check_can_fail():
    private = {"_placement", "_prepare"}
    source = "def f(model):\n    return model._prepare(1, 2), self._placement\n"
    assert private_model_accesses(source, private) == ["line 2: model._prepare"]
