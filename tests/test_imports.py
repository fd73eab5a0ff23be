"""The package's import rules, checked on the source (ASTs): no private name imported from another module, and no
import cycle between modules (every import counts, also those inside functions); report imports study, never the
reverse; runtime imports no benchmark."""

from __future__ import annotations

import ast
from pathlib import Path

import ebatch

ROOT = Path(ebatch.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = (ROOT.parent / Path(*package) / "__init__.py").exists()
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, tree: ast.Module):
    """(imported module, names) for every import statement of ``module`` that points inside ebatch."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ebatch"):
                    yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.startswith("ebatch"):
                yield target, tuple(alias.name for alias in node.names)


def _graph() -> dict[str, set[str]]:
    """Module -> the ebatch modules it imports (``from package import submodule`` counts as the submodule)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, tree in MODULES.items():
        for target, names in _imports(module, tree):
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for dep in subs or [target]:
                if dep in MODULES and dep != module:
                    graph[module].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_private_name_is_imported_from_another_module():
    offences = [
        f"{module} imports {name} from {target}"
        for module, tree in MODULES.items()
        for target, names in _imports(module, tree)
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert offences == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_point_one_way():
    graph = _graph()
    upward = [
        f"{module} -> {dep}"
        for module, deps in graph.items()
        for dep in deps
        if (module.startswith("ebatch.experiments.study") and dep.startswith("ebatch.experiments.report"))
        or (module.startswith("ebatch.runtime") and dep.startswith(("ebatch.bench", "ebatch.experiments")))
    ]
    assert upward == []
