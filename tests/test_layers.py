"""Imports go one way: every import inside openyolox (function-level ones included) points to a
lower layer, or stays inside its own package. docs/architecture.md draws these layers."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "openyolox"

# lower number = lower layer; a module may import only from strictly lower layers, or from
# its own package (openyolox.<name>); units on the same layer (data and models, export and
# tracking) do not import each other
LAYERS = {
    "openyolox.version": 0, "openyolox.typing": 0, "openyolox.errors": 0, "openyolox.atomic": 0,
    "openyolox.config": 1, "openyolox.run_dir": 1, "openyolox.checkpoint": 1, "openyolox.cache": 1,
    "openyolox.ops": 2,
    "openyolox.data": 3, "openyolox.models": 3,
    "openyolox.hub": 4,
    "openyolox.inference": 5,
    "openyolox.export": 6, "openyolox.tracking": 6,
    "openyolox.evaluation": 7,
    "openyolox.training": 8,
    "openyolox.bench": 9, "openyolox.detector": 9,
    "openyolox.api": 10, "openyolox.cli": 10,
    "openyolox.__main__": 11, "openyolox": 11,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer unit of a module: openyolox.<first part> (or the root package)."""
    return ".".join(module.split(".")[:2])


def imports(path: Path):
    """(line, imported module) for every absolute openyolox import in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("openyolox"):
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("openyolox"):
                    yield node.lineno, alias.name


def test_every_unit_has_a_layer():
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), f"add these to LAYERS (and docs/architecture.md): {sorted(units - set(LAYERS))}"


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = unit(module_name(path))
        for line, target in imports(path):
            dst = unit(target)
            if dst != src and LAYERS[dst] >= LAYERS[src]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} "
                             f"(layer {LAYERS[dst]} from layer {LAYERS[src]})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)
