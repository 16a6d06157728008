"""prunekit's and baselines' module import graph has no cycles, counting every import statement
(module level, function level, ``if TYPE_CHECKING:``), and function-level imports of their own
modules only defer a heavy optional dependency (each says so in a ``# deferred: ...`` comment).

The graph is read with :mod:`ast` (nothing is imported): ``import a.b`` is an edge to ``a.b``,
``from a import b`` to ``a.b`` when that is a module and to ``a`` otherwise, relative imports are
resolved against the importing module's package. Importing ``a.b`` also runs ``a/__init__``, but
a parent package is initialised before its submodules anyway, so those implicit edges are left
out (as pylint's cyclic-import check does); an explicit ``from a import x`` is an edge to ``a``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("prunekit", "baselines")
DEFERRED = "# deferred:"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _target(name: str) -> str | None:
    """The deepest module of ours that ``name`` names (None: not ours)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _imports(module: str, source: str | None = None) -> list[tuple[str, ast.stmt, bool]]:
    """``(imported module, node, at function level)`` for every import of our modules in
    ``module`` (its file, or ``source`` standing in for it)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: list[tuple[str, ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    t = _target(alias.name)
                    if t is not None:
                        found.append((t, child, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    src = ".".join(base + ([child.module] if child.module else []))
                else:
                    src = child.module or ""
                for alias in child.names:
                    t = _target(f"{src}.{alias.name}") if alias.name != "*" else None
                    if t is None or t == _target(src):
                        t = _target(src)
                    if t is not None:
                        found.append((t, child, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [_path_in(graph, set(c)) for c in comps]


def _path_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path ``[a, ..., a]``."""
    start = min(comp)
    prev: dict[str, str] = {start: ""}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)  # not reached: a component's modules lie on a cycle


def _where(module: str, src: str) -> str:
    """``file:line`` of an import in ``module`` of ``src`` (for the failure message)."""
    for t, node, _ in _imports(module):
        if t == src:
            return f"{MODULES[module].relative_to(ROOT)}:{node.lineno}"
    return str(MODULES[module].relative_to(ROOT))


def test_the_graph_sees_function_level_relative_and_submodule_imports() -> None:
    source = ("import os\n"
              "from . import base\n"                      # relative, a submodule
              "from ..registry import PRUNERS\n"          # relative, a name in a module
              "from prunekit.models import vgg, Normalize\n"
              "if True:\n    import prunekit.train.loop\n"
              "def f():\n    from prunekit import errors\n"
              "class C:\n    def g(self):\n        import baselines.hydra\n")
    found = [(t, fn) for t, _, fn in _imports("prunekit.pruning.masking", source)]
    assert found == [("prunekit.pruning.base", False), ("prunekit.registry", False),
                     ("prunekit.models.vgg", False), ("prunekit.models", False),
                     ("prunekit.train.loop", False), ("prunekit.errors", True),
                     ("baselines.hydra", True)]
    graph = _graph()
    assert "prunekit.registry" in graph["prunekit"]
    assert "prunekit.data.fashion_mnist" in graph["prunekit.data"]  # from pkg import submodule
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = _cycles(graph)
    lines = []
    for path in cycles:
        hops = [f"{a} ({_where(a, b)})" for a, b in zip(path, path[1:])]
        lines.append(" -> ".join(hops + [path[-1]]))
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_function_level_imports_of_our_modules_say_why() -> None:
    """A function-level import of a prunekit / baselines module is only there to defer a heavy
    optional dependency, and its line (or a comment above its run of imports) says which:
    ``# deferred: ...``."""
    bad = set()
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for t, node, in_function in _imports(module):
            if not in_function:
                continue
            here = lines[node.lineno - 1: node.end_lineno]
            above = []  # the comment may stand above a run of such imports
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith(("#", "from ", "import ")):
                above.append(lines[i])
                i -= 1
            if not any(DEFERRED in line for line in here + above):
                bad.add(f"{path.relative_to(ROOT)}:{node.lineno} imports {t}")
    assert not bad, ("function-level imports of our own modules without a '# deferred: <the "
                     "heavy dependency>' comment (move them to the top):\n" +
                     "\n".join(sorted(bad)))
