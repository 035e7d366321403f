"""The package is laid out by the process its code runs in (see README, "How the
code is organised"); these tests keep each room to what it may import, reading
every import statement of the package, function-level ones included."""

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "metaflow_dagster"
PACKAGE = "metaflow_dagster"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            # `from . import x` imports the submodule x.
            found.update("%s.%s" % (module, alias.name) for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in PACKAGE_DIR.rglob("*.py")}


def _in(module: str, *rooms: str) -> bool:
    return any(module == "%s.%s" % (PACKAGE, r) or module.startswith("%s.%s." % (PACKAGE, r))
               for r in rooms)


def _ours(imports: set) -> set:
    return {m for m in imports if m in MODULES}


def test_the_layout_is_what_the_readme_describes():
    rooms = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert {"compiler", "runtime", "task", "deploy", "component", "naming", "plan",
            "files"} <= rooms
    assert len(MODULES) > 30  # the package really was read


@pytest.mark.parametrize("room", ["compiler", "task", "naming", "plan", "files"])
def test_compile_time_and_task_side_code_never_imports_dagster(room):
    offenders = {
        module: sorted(m for m in imports if m.split(".")[0].startswith("dagster"))
        for module, imports in MODULES.items() if _in(module, room)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_runtime_never_imports_the_cli_or_the_compiler():
    offenders = {
        module: sorted(m for m in _ours(imports) if _in(m, "deploy", "compiler", "component"))
        for module, imports in MODULES.items() if _in(module, "runtime")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def _imports_metaflow(imports: set) -> bool:
    return any(m == "metaflow" or m.startswith("metaflow.") for m in imports)


def test_the_component_imports_neither_metaflow_nor_the_cli():
    """A code server loading a dg project builds definitions from the stored plan: the
    component, and what it imports of the compiler, never import Metaflow (the state is
    computed by the CLI in its own process)."""
    component = {m: i for m, i in MODULES.items() if _in(m, "component")}
    assert component
    offenders = {}
    for module, imports in component.items():
        bad = sorted(m for m in _ours(imports) if _in(m, "deploy", "task")
                     or (_in(m, "compiler") and _imports_metaflow(MODULES[m])))
        if _imports_metaflow(imports):
            bad.append("metaflow")
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_only_the_component_and_the_package_root_may_import_the_component():
    offenders = {
        module: sorted(m for m in _ours(imports) if _in(m, "component"))
        for module, imports in MODULES.items()
        if not _in(module, "component") and module != PACKAGE
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_task_process_imports_only_shared_names():
    offenders = {
        module: sorted(m for m in _ours(imports)
                       if not _in(m, "task", "naming", "plan") and m != PACKAGE)
        for module, imports in MODULES.items() if _in(module, "task")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_shared_modules_import_no_room():
    for shared in ("naming", "plan", "files"):
        imports = _ours(MODULES["%s.%s" % (PACKAGE, shared)])
        assert imports <= {PACKAGE}, (shared, imports)


def test_no_import_cycles():
    graph = {m: _ours(i) - {m} for m, i in MODULES.items()}
    # A package's __init__ is imported by each of its modules; that is not a cycle
    # unless the __init__ imports one of them back, which the walk below finds.
    for module in graph:
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    visiting, done, cycles = [], set(), []

    def visit(module):
        if module in done:
            return
        if module in visiting:
            cycles.append(visiting[visiting.index(module):] + [module])
            return
        visiting.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []


def test_the_reaper_imports_only_naming():
    """It runs as a process of its own next to every run worker: stdlib and naming only."""
    imports = MODULES["%s.reaper" % PACKAGE]
    assert _ours(imports) <= {PACKAGE, "%s.naming" % PACKAGE}
    assert not {m for m in imports if m.split(".")[0] in ("dagster", "metaflow")}
