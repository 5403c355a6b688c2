"""The package's structure, measured: what makes a change expensive.

    python -m benchmarks.structure [--top 5] [--root privsynth]

Prints the largest modules (lines), the longest functions (lines), the functions with the
most parameters, import cycles among modules (module-level imports; deferred imports inside
functions listed apart), imports of another module's private names, and the files that test
a summary kind ("exists", "count", "first", "last", "value") by string.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

from benchmarks.common import ROOT, table

SUMMARY_KINDS = {"exists", "count", "first", "last", "value"}


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, name: str, deferred: bool) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import; module level only, or only inside functions."""
    out = []
    top = set(map(id, tree.body))
    typing_only = {id(n) for b in tree.body if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.unparse(b.test)
                   for n in ast.walk(b)}  # imports for annotations only: not a dependency at run time
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None or id(node) in typing_only:
            continue
        inside = id(node) not in top and not any(id(node) in map(id, ast.walk(b)) for b in tree.body
                                                 if isinstance(b, ast.If))
        if inside != deferred:
            continue
        module = node.module
        if node.level:
            base = name.split(".")[:-node.level]
            module = ".".join(base + ([node.module] if node.module else []))
        out.append((module, [a.name for a in node.names]))
    return out


def _targets(module: str, names: list[str], modules: set[str]) -> set[str]:
    """What ``from module import names`` depends on: the submodules it names, else the module."""
    subs = {f"{module}.{n}" for n in names if f"{module}.{n}" in modules}
    rest = [n for n in names if f"{module}.{n}" not in modules]
    return subs | ({module} if rest and module in modules else set())


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def _tests_summary_by_string(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if not any(isinstance(o, ast.Attribute) and o.attr == "summary" for o in operands):
                continue
            for o in operands:
                if isinstance(o, ast.Constant) and o.value in SUMMARY_KINDS:
                    return True
                if isinstance(o, ast.Tuple | ast.Set | ast.List) and any(
                        isinstance(e, ast.Constant) and e.value in SUMMARY_KINDS for e in o.elts):
                    return True
    return False


def measure(root: Path) -> dict[str, object]:
    files = sorted(p for p in root.rglob("*.py"))
    sizes, functions, params = [], [], []
    graph: dict[str, set[str]] = defaultdict(set)
    deferred: dict[str, set[str]] = defaultdict(set)
    private, by_string = [], []
    modules = {_module(p, root) for p in files}
    for path in files:
        text = path.read_text()
        tree = ast.parse(text)
        name = _module(path, root)
        rel = str(path.relative_to(root.parent))
        sizes.append((len(text.splitlines()), rel))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append((length, f"{rel}:{node.lineno} {node.name}"))
                a = node.args
                count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                count -= 1 if a.args and a.args[0].arg in ("self", "cls") else 0
                params.append((count, f"{rel}:{node.lineno} {node.name}"))
        for later, edges, note in ((False, graph, ""), (True, deferred, " (deferred)")):
            for module, names in _imports(tree, name, deferred=later):
                edges[name] |= _targets(module, names, modules) - {name}
                private += [f"{rel}: {module}.{n}{note}" for n in names
                            if n.startswith("_") and not n.startswith("__") and module.startswith(root.name)]
        if _tests_summary_by_string(tree):
            by_string.append(rel)
    both = {k: graph[k] | deferred[k] for k in set(graph) | set(deferred)}
    return {"sizes": sorted(sizes, reverse=True), "functions": sorted(functions, reverse=True),
            "params": sorted(params, reverse=True), "cycles": _cycles(dict(graph)),
            "cycles_with_deferred": _cycles(both), "private": private, "by_string": by_string}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT / "privsynth"))
    args = parser.parse_args()
    found = measure(Path(args.root))
    top = args.top
    table("Largest modules", ["lines", "module"], [[n, m] for n, m in found["sizes"][:top]])  # type: ignore[index]
    table("Longest functions", ["lines", "function"], [[n, f] for n, f in found["functions"][:top]])  # type: ignore[index]
    table("Most parameters", ["parameters", "function"], [[n, f] for n, f in found["params"][:top]])  # type: ignore[index]
    table("Import cycles", ["kind", "modules"],
          [["module level", " <-> ".join(c)] for c in found["cycles"]]  # type: ignore[union-attr]
          + [["with deferred imports", " <-> ".join(c)] for c in found["cycles_with_deferred"]])  # type: ignore[union-attr]
    table("Private names imported from another module", ["where"], [[p] for p in found["private"]])  # type: ignore[union-attr]
    table("Files that test a summary kind by string", ["file"], [[f] for f in found["by_string"]])  # type: ignore[union-attr]
    sizes = found["sizes"]
    print(f"modules over 400 lines: {sum(1 for n, _ in sizes if n > 400)}; "  # type: ignore[union-attr]
          f"functions over 60 lines: {sum(1 for n, _ in found['functions'] if n > 60)}")  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
