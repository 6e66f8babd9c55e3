"""The package's house rules (../shared/STYLE.md, issue #33), checked on the source: no import circle, no
private name imported from another module, modules under 400 lines and functions under 60."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keraszoo"


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), filename=str(path))
    return modules


def _imports(tree: ast.Module) -> list[tuple[str, str | None]]:
    """(module, name) for every keraszoo import, at the top or inside a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keraszoo"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("keraszoo")]
    return found


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {}
    for name, tree in modules.items():
        targets = set()
        for module, imported in _imports(tree):
            full = f"{module}.{imported}" if imported else module
            targets.add(full if full in modules else module)  # a submodule, or a name of a module
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    circles = [cycle for cycle in map(cycle_from, graph) if cycle]
    assert circles == [], " ; ".join(" -> ".join(c) for c in circles)


def test_no_private_name_is_imported_from_another_module():
    private = [f"{name} imports {module}.{imported}" for name, tree in _modules().items()
               for module, imported in _imports(tree)
               if imported and imported.startswith("_") and module != "keraszoo"]  # keraszoo/__init__: its _quiet
    assert private == []


def test_modules_and_functions_stay_readable_in_one_sitting():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert too_long == []
