"""The package's layers (docs/architecture.md): a module imports only its own layer or lower
ones, and module-level imports form no cycle. Function-level imports count for layering too."""
import ast
from pathlib import Path

import bah

ROOT = Path(bah.__file__).parent
# lower number = lower layer; a module may import any layer <= its own
LAYERS = {"core": 0, "data": 1, "models": 2, "metrics": 2, "stages": 3,
          "train": 4, "report": 5, "apps": 6, "synth": 6, "cli": 6}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(name, path):
    """(imported module, at module level?) for every ``bah`` import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t.startswith("bah.") and t != name:
                yield t, id(node) in top


def layer(name):
    parts = name.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def test_every_subpackage_has_a_layer():
    top = {p.name for p in ROOT.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    top = {t.removesuffix(".py") for t in top} - {"__init__"}
    assert top <= set(LAYERS), f"give these a layer in tests/test_layering.py and docs/architecture.md: {top - set(LAYERS)}"


def test_no_upward_imports():
    bad = [f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})"
           for name, path in MODULES.items() for dep, _ in _imports(name, path)
           if layer(dep) > layer(name)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_at_module_level():
    graph = {name: {d for d, top in _imports(name, path) if top} for name, path in MODULES.items()}
    # a package's __init__ importing its own submodules is how registries fill; skip parent->child edges
    graph = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in graph.items()}
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_an_upward_import(tmp_path):
    # the test itself can fail: a core module importing the trainer is reported
    fake = tmp_path / "bah" / "core" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from bah.train.engine import evaluate\n")
    deps = list(_imports("bah.core.x", fake))
    assert ("bah.train.engine", True) in deps and layer("bah.train.engine") > layer("bah.core.x")
