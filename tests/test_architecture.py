"""The layout the README's architecture section promises: imports only point down the layers, and
no function runs over 80 lines of code (docstring excluded) unless a comment above it says why."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rnnsim"

# Lower layers first (README, "Architecture"). A module may import from its own layer and below.
LAYERS = [
    {"kernels", "validation"},
    {"reference", "runtime"},
    {"models", "init"},
    {"jacobians", "theory", "curvature", "landscape", "layers", "cliff", "ensemble"},
    {"tasks", "optim", "train"},
    {"executors", "store"},
    {"experiment", "plots", "report", "cli", "bench", "claims", "runs", "explore"},
]
MAX_LINES = 80
WHY = "# long:"  # a comment line directly above a longer function (or its decorator) says why


def _layer(module: str) -> int:
    """The layer of ``rnnsim.a.b`` (its first component below the package)."""
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"module rnnsim.{top} is in no layer: add it to LAYERS and the README")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue  # the package's front door imports from every layer
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def _imports(tree: ast.AST):
    """Every rnnsim module a tree imports, with the line (function-level imports included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rnnsim."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "rnnsim":  # from rnnsim import models, plots
                for alias in node.names:
                    if (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir():
                        yield f"rnnsim.{alias.name}", node.lineno
            elif node.module.startswith("rnnsim."):
                yield node.module, node.lineno


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v).split("/")[-1])
def test_imports_point_down(module, path):
    own = _layer(module)
    up = [
        f"line {line}: {target} (layer {_layer(target)})"
        for target, line in _imports(ast.parse(path.read_text()))
        if _layer(target) > own
    ]
    assert not up, f"{module} (layer {own}) imports from a higher layer: {up}"


def _code_lines(fn: ast.FunctionDef) -> int:
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = first.end_lineno + 1 if has_doc and len(fn.body) > 1 else fn.body[0].lineno
    return fn.end_lineno - start + 1


def test_functions_are_short_or_say_why():
    long = []
    for _, path in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                top = min([node.lineno] + [d.lineno for d in node.decorator_list])
                above = lines[top - 2].strip().lower() if top >= 2 else ""
                if _code_lines(node) > MAX_LINES and not above.startswith(WHY):
                    long.append(f"{path.name}:{node.lineno} {node.name} ({_code_lines(node)})")
    assert not long, f"functions over {MAX_LINES} lines without a '{WHY}' comment: {long}"
