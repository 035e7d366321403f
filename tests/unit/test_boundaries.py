"""The package is laid out by the process its code runs in (README, "How the code
is organised"). These tests read that section's tables and hold the tree to them:
every folder and module is in a row, every row is in the tree, and each room
imports only what its row allows, function-level imports included."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "metaflow_dagster"
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


def _readme_tables():
    """The section's tables: lists of rows, each a list of its cells."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is organised", 1)[1].split("\n## ", 1)[0]
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            tables.append(rows[2:])  # past the header and its rule
            rows = []
    return tables


def _names(cell: str) -> list:
    return re.findall(r"`([^`]+)`", cell)


def _room(name: str) -> str:
    """A README name ("runtime/", "naming.py", "plan") as a module name of ours."""
    return "%s.%s" % (PACKAGE, name.rstrip("/").replace(".py", "").replace("/", "."))


ROOMS_TABLE, INSIDE_TABLE = _readme_tables()
RULES = [(_names(row[0]), row[2], row[3]) for row in ROOMS_TABLE]
ROOM_OF = {_room(name): rule for rule in RULES for name in rule[0]}


def _rule_of(module: str):
    for room in sorted(ROOM_OF, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room, ROOM_OF[room]
    return None, None


def test_every_folder_and_module_of_the_package_has_a_row():
    top_level = {_module_name(p) for p in PACKAGE_DIR.iterdir()
                 if p.suffix == ".py" and p.name != "__init__.py"}
    top_level |= {"%s.%s" % (PACKAGE, p.name) for p in PACKAGE_DIR.iterdir()
                  if (p / "__init__.py").exists()}
    assert top_level == set(ROOM_OF)
    assert len(MODULES) > 30  # the package really was read


def test_the_rooms_inside_runtime_and_deploy_are_the_tree():
    listed = {_room(name) for row in INSIDE_TABLE for name in _names(row[0])}
    in_tree = set()
    for room in ("runtime", "deploy"):
        in_tree.add("%s.%s" % (PACKAGE, room))
        in_tree |= {"%s.%s.%s" % (PACKAGE, room, p.name) for p in (PACKAGE_DIR / room).iterdir()
                    if (p / "__init__.py").exists()}
    assert listed == in_tree


@pytest.mark.parametrize("names,ours,never", RULES, ids=[" ".join(r[0]) for r in RULES])
def test_each_room_imports_only_what_its_row_allows(names, ours, never):
    rooms = [_room(name) for name in names]
    allowed = None if ours == "everything" else {_room(n) for n in _names(ours)}
    forbidden = set(re.findall(r"\w+", never))
    offenders = {}
    for module, imports in MODULES.items():
        room, _ = _rule_of(module)
        if room not in rooms:
            continue
        bad = sorted(m for m in imports if m.split(".")[0] in forbidden)
        if allowed is not None:
            bad += sorted(m for m in _ours(imports)
                          if m != PACKAGE and _rule_of(m)[0] not in allowed | {room})
        if bad:
            offenders[module] = bad
    assert offenders == {}


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


def _imports_metaflow(imports: set) -> bool:
    return any(m == "metaflow" or m.startswith("metaflow.") for m in imports)


def test_what_the_component_imports_of_the_compiler_never_imports_metaflow():
    """A code server loading a dg project builds definitions from the stored plan: the
    compiler's modules the component imports are its pure ones (the state is computed by
    the CLI, in its own process)."""
    component = {m: i for m, i in MODULES.items() if _in(m, "component")}
    assert component
    offenders = {module: sorted(m for m in _ours(imports)
                                if _in(m, "compiler") and _imports_metaflow(MODULES[m]))
                 for module, imports in component.items()}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_only_the_component_and_the_package_root_import_the_component():
    offenders = {
        module: sorted(m for m in _ours(imports) if _in(m, "component"))
        for module, imports in MODULES.items()
        if not _in(module, "component") and module != PACKAGE
    }
    assert {m: i for m, i in offenders.items() if i} == {}
