"""The package's layering: its import graph, counting imports inside functions too, has no cycle, every
import goes down the layer order below (docs/architecture.md), and the errors module is a leaf that every
layer can import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_attention"

# Each part of the package (a subpackage or a top-level module) and its layer: a module may import its
# own part and parts of lower layers, never a higher or an equal other one. A new part needs a layer here.
LAYERS = {
    0: ("errors", "runtime", "tracking", "classes", "lbp_sampler", "schema", "runs", "viz"),
    1: ("lbp", "data", "task_options"),
    2: ("models",),
    3: ("config",),
    4: ("reporting",),
    5: ("callbacks",),
    6: ("training",),
    7: ("inference",),
    8: ("cli",),
}
# Inside inference/, each module imports only those before it: one face's result and the files it is
# written to, ONNX files, videos, the shipped model's card, the predictor, then the tasks built on it.
# (An image's faces are prepared in data/preprocess.py, as the training faces are.)
INFERENCE_ORDER = (
    "prediction",
    "onnx_io",
    "video",
    "shipped",
    "predictor",
    "predict",
    "quantize",
    "export",
)
LAYER_OF = {part: layer for layer, parts in LAYERS.items() for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere in its code (``from pkg import sub`` counts as ``sub``)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules and name != here)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # a package's __init__ re-exports its modules; the layering is between modules
    modules = {name for name, p in files.items() if p.name != "__init__.py"}
    return {name: imported_modules(files[name], modules) for name in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle_even_through_function_local_imports():
    graph = import_graph()
    assert len(graph) > 40 and "fer_attention.inference.predictor" in graph["fer_attention.inference.export"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def part_of(module: str) -> str:
    return module.split(".")[1]


def imports_up(graph: dict[str, set[str]]) -> list[str]:
    """Every import of ``graph`` that goes to another part of an equal or higher layer, as "a -> b"."""
    return sorted(
        f"{name} -> {dep}"
        for name, deps in graph.items()
        for dep in deps
        if part_of(dep) != part_of(name) and LAYER_OF[part_of(dep)] >= LAYER_OF[part_of(name)]
    )


def test_every_part_of_the_package_has_a_layer_and_imports_only_lower_layers():
    graph = import_graph()
    parts = {part_of(name) for name in graph}
    assert parts - set(LAYER_OF) == set(), "give these parts a layer in LAYERS"
    assert imports_up(graph) == []


def test_imports_up_names_an_import_from_a_lower_layer_to_a_higher_one():
    graph = {"fer_attention.data.summary": {"fer_attention.training.builders", "fer_attention.errors"}}
    assert imports_up(graph) == ["fer_attention.data.summary -> fer_attention.training.builders"]
    assert imports_up({"fer_attention.lbp": {"fer_attention.data.splits"}}) == [
        "fer_attention.lbp -> fer_attention.data.splits"
    ]


def imports_forward(graph: dict[str, set[str]], package: str, order: tuple[str, ...]) -> list[str]:
    """Every import between two modules of ``package`` that goes to a module at or after its own place in
    ``order``, as "a -> b"."""
    place = {f"fer_attention.{package}.{name}": i for i, name in enumerate(order)}
    return sorted(
        f"{name} -> {dep}"
        for name, deps in graph.items()
        if name in place
        for dep in deps
        if dep in place and place[dep] >= place[name]
    )


def test_inside_inference_each_module_imports_only_those_before_it():
    graph = import_graph()
    inside = {name.rpartition(".")[2] for name in graph if part_of(name) == "inference"}
    assert inside == set(INFERENCE_ORDER), "give each module of inference/ its place in INFERENCE_ORDER"
    assert imports_forward(graph, "inference", INFERENCE_ORDER) == []
    wrong = {"fer_attention.inference.video": {"fer_attention.inference.predictor", "fer_attention.errors"}}
    assert imports_forward(wrong, "inference", INFERENCE_ORDER) == [
        "fer_attention.inference.video -> fer_attention.inference.predictor"
    ]


def test_errors_is_a_leaf_module():
    graph = import_graph()
    assert graph["fer_attention.errors"] == set()
    users = {name for name, deps in graph.items() if "fer_attention.errors" in deps}
    assert {
        "fer_attention.config",
        "fer_attention.inference.onnx_io",
        "fer_attention.inference.predictor",
    } <= (users)


def test_find_cycle_reports_the_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
