"""The house rules, read from the source with ast: each failure names the file and line that breaks a rule."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# synkit's packages, lowest first: a package imports only itself and the packages before it
LAYERS = ("core", "data", "engine", "t2i", "generate", "classify", "clip", "analysis", "study")


def sources(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(line, imported synkit module or module.name) of every import in the file, inside functions too."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("synkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synkit"):
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)


MODULES = {module_name(p): p for p in sources("synkit")}


def target(name: str) -> str | None:
    """The synkit module an imported dotted name lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph():
    edges = {}
    for mod, path in MODULES.items():
        for line, name in imports(path):
            dest = target(name)
            if dest and dest != mod and not mod.startswith(dest + "."):  # a package's own __init__ is not an edge
                edges.setdefault(mod, {}).setdefault(dest, line)
    return edges


def layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def test_no_import_circle():
    edges, state, problems = graph(), {}, []

    def visit(mod, stack):
        state[mod] = "open"
        for dest, line in edges.get(mod, {}).items():
            if state.get(dest) == "open":
                cycle = stack[stack.index(dest):] + [dest] if dest in stack else [mod, dest]
                problems.append(f"{rel(MODULES[mod])}:{line} closes the circle {' -> '.join(cycle)}")
            elif dest not in state:
                visit(dest, stack + [dest])
        state[mod] = "done"

    for mod in sorted(edges):
        if mod not in state:
            visit(mod, [mod])
    assert not problems, "\n".join(problems)


def test_packages_import_only_downwards():
    problems = [f"{rel(MODULES[mod])}:{line} imports {dest} ({LAYERS[layer(dest)]} is above {LAYERS[layer(mod)]})"
                for mod, out in graph().items() if layer(mod) < len(LAYERS)
                for dest, line in out.items() if layer(dest) > layer(mod)]
    assert not problems, "\n".join(problems)


def test_no_private_name_across_modules():
    problems = []
    for path in sources("synkit", "tests", "benchmarks"):
        tree = ast.parse(path.read_text())
        aliases = {}  # local name -> synkit module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synkit"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        problems.append(f"{rel(path)}:{node.lineno} imports {node.module}.{a.name}")
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("synkit"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                problems.append(f"{rel(path)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not problems, "\n".join(problems)


def test_short_modules_and_functions():
    problems = []
    for path in sources("synkit"):
        text = path.read_text()
        if len(text.splitlines()) > 500:
            problems.append(f"{rel(path)}: {len(text.splitlines())} lines (at most 500)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                problems.append(f"{rel(path)}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines (at most 60)")
    assert not problems, "\n".join(problems)


def test_renames_only_in_the_atomic_write_helper():
    problems = [f"{rel(path)}:{i}: {line.strip()}" for path in sources("synkit") if rel(path) != "synkit/core/files.py"
                for i, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\bos\.(replace|rename)\(", line)]
    assert not problems, "write through synkit.core.files.atomic (or files.rename):\n" + "\n".join(problems)


def test_optimizer_steps_only_in_the_training_loop():
    # gpu_check's plain PyTorch loop is the baseline the loop is measured against
    allowed = {"synkit/engine/loop.py", "synkit/study/gpu_check.py"}
    problems = [f"{rel(path)}:{i}: {line.strip()}" for path in sources("synkit") if rel(path) not in allowed
                for i, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\b(opt|optim|optimizer)\.step\(", line)]
    assert not problems, "step through synkit.engine.loop:\n" + "\n".join(problems)


def test_no_dispatch_on_names_outside_the_registries():
    """Pipelines are told apart by ``synkit.t2i.text.PIPELINES``, worlds by their own attributes (the World protocol in
    ``synkit/data/worlds/``): no type-name comparisons, no ``== "fashion"``, no ``hasattr(split, "images")`` elsewhere."""
    rules = [(r"type\([^)]*\)\.__name__\s*(==|!=|in\b|not in\b)", "a type-name dispatch"),
             (r"""[!=]=\s*["']fashion["']""", "a dispatch on the fashion world's name"),
             (r"""hasattr\([^,]+,\s*["']images["']\)""", "a split told apart by hasattr (use split.in_memory)")]
    problems = [f"{rel(path)}:{i}: {what}: {line.strip()}" for path in sources("synkit") if not rel(path).startswith("synkit/data/worlds/")
                for i, line in enumerate(path.read_text().splitlines(), 1) for pattern, what in rules if re.search(pattern, line)]
    assert not problems, "\n".join(problems)


def notebook_cells():
    """(notebook, cell number, source) of every code cell of the study's notebooks but the parameters cell: that one is
    the study file's schema (a name, type, default and rule per line, read by ``synkit check``), not code."""
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
                yield rel(path), i, "".join(cell["source"])


def test_notebooks_hold_short_cells_and_no_file_names():
    """Notebook code cells stay short (the work lives in synkit) and name no artifact file: paths come from
    ``synkit.core.layout.StudyFiles``; nor do they dispatch on a world's name."""
    artifact = re.compile(r"""["'][^"'\s]*\.(parquet|json|csv|npy|npz|png|html|pt|safetensors|tar|jsonl)["']""")
    problems = []
    for path, i, source in notebook_cells():
        lines = source.splitlines()
        if len(lines) > 20:
            problems.append(f"{path}: cell {i} has {len(lines)} lines (at most 20): {lines[0]}")
        problems += [f"{path}: cell {i} line {n}: an artifact file name: {line.strip()}"
                     for n, line in enumerate(lines, 1) if artifact.search(line)]
        problems += [f"{path}: cell {i} line {n}: a dispatch on the fashion world's name: {line.strip()}"
                     for n, line in enumerate(lines, 1) if re.search(r"""[!=]=\s*["']fashion["']""", line)]
    assert not problems, "\n".join(problems)
