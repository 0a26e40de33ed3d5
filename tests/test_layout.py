"""The package's layout: no module imports a module that imports it back,
imports inside functions counted (issue #14: "the layout has no cycles";
an import moved into a function hides a cycle, it does not remove it), and
the model imports nothing of ours. Read from the source, so a cycle that
happens to import fine in today's order still fails here."""

import ast
import pathlib

import tasktypes

PACKAGE = pathlib.Path(tasktypes.__file__).parent


def _imports(tree):
    """Names of our modules that the module imports anywhere: top level,
    functions and methods alike."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if module != "tasktypes" and not module.startswith("tasktypes."):
                    continue
                module = module.partition("tasktypes")[2].lstrip(".")
            if module:
                found.add(module.split(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tasktypes."):
                    found.add(alias.name.split(".")[1])
    return found


def _graph():
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    return {name: {m for m in _imports(ast.parse(path.read_text()))
                   if m in modules and m != name}
            for name, path in modules.items() if name != "__init__"}


def _cycles(graph):
    cycles, done = [], set()

    def visit(name, path):
        for dep in sorted(graph.get(name, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    return cycles


def test_no_import_cycles():
    graph = _graph()
    assert len(graph) > 30  # the package was read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_model_imports_nothing_of_ours():
    assert _graph()["model"] == set()


def test_an_import_inside_a_function_counts():
    tree = ast.parse("def f():\n    from .store import Store\n")
    assert _imports(tree) == {"store"}
