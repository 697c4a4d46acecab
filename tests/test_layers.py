"""The package's layers (docs/ARCHITECTURE.md): no import cycle, and every module imports only from its own
layer or those below. Imports are read from the source (including those inside functions), so a lazy
import cannot hide a cycle. ``python tests/test_layers.py`` prints each module's layer and imports."""
import ast
import pathlib
import sys
from typing import Dict, List, Set

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "inpaint_fast"

# Bottom up: a module may import from its own layer and the layers before it.
LAYERS = [
    ("checks and reference", ("inpaint_fast._validation", "inpaint_fast.reference")),
    ("ops", ("inpaint_fast.ops",)),
    ("nets", ("inpaint_fast.nets",)),
    ("functional", ("inpaint_fast.functional",)),
    ("losses", ("inpaint_fast.losses",)),
    ("presets", ("inpaint_fast.presets",)),
    ("app", ("inpaint_fast.demo", "inpaint_fast.cli", "inpaint_fast.__main__", "inpaint_fast")),
]


def modules() -> Dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> Dict[str, Set[str]]:
    """Each module mapped to the package modules it imports (anywhere in its source)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # a module of the package, or a name defined in ``source``
                    target = f"{source}.{alias.name}"
                    if target in mods or node.module:  # ``from .. import _C``: the compiled module, not ``..``
                        deps.add(target if target in mods else source)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def layer_of(module: str) -> int:
    """The index in LAYERS of the most specific prefix naming ``module``."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as a list of modules (first = last), or [] when there is none."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_every_module_imports_only_downward():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in import_graph().items() for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_checker_finds_a_cycle_and_an_upward_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    assert layer_of("inpaint_fast.functional.pixel") > layer_of("inpaint_fast.ops.masked_error")
    assert layer_of("inpaint_fast") == len(LAYERS) - 1 and layer_of("inpaint_fast._validation") == 0


if __name__ == "__main__":
    graph = import_graph()
    for module in sorted(graph, key=lambda m: (layer_of(m), m)):
        print(f"{LAYERS[layer_of(module)][0]:>22}  {module}: {', '.join(sorted(graph[module])) or '-'}")
    cycle = find_cycle(graph)
    print("import cycle: " + " -> ".join(cycle) if cycle else "no import cycle")
    sys.exit(1 if cycle else 0)
