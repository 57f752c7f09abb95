"""The shape of the code: one-way data flow between packages, no import cycles, and what the
board-side packages must not pull in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the packages in data-flow order: each may import only those before it
LAYERS = ("dnn", "hwmodels", "envs", "agents", "runtime")


def project_modules() -> dict[str, Path]:
    """Every module of the project: ``pkg.mod`` -> its file (plus the two top-level scripts)."""
    out = {"dynscale_cli": REPO / "dynscale_cli.py", "train_agent": REPO / "train_agent.py"}
    for pkg in LAYERS:
        for f in sorted((REPO / pkg).glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, module_level: bool) -> set[str]:
    """Project modules ``path`` imports (at module level only, or anywhere), ``TYPE_CHECKING``
    blocks excluded (they never run)."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    todo = list(tree.body)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.If) and _is_type_checking(n):
            continue
        nodes.append(n)
        if isinstance(n, (ast.If, ast.Try, ast.With)) or not module_level:
            todo.extend(ast.iter_child_nodes(n))
    found = set()
    known = project_modules()
    for n in nodes:
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names = [n.module] + [f"{n.module}.{a.name}" for a in n.names]
        else:
            continue
        found.update(x for x in names if x in known)
    return found


@pytest.mark.parametrize("module_level", [True, False], ids=["module-level", "any-level"])
def test_no_import_cycle(module_level: bool) -> None:
    """Acyclic at module level (what import order needs), and even counting the imports that
    functions make late (what a reader following the data flow needs)."""
    graph = {m: imports(f, module_level) - {m} for m, f in project_modules().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_packages_import_only_earlier_layers() -> None:
    bad = []
    for m, f in project_modules().items():
        pkg = m.split(".")[0]
        if pkg not in LAYERS:
            continue
        for dep in imports(f, module_level=False):
            if dep.split(".")[0] in LAYERS and LAYERS.index(dep.split(".")[0]) > LAYERS.index(pkg):
                bad.append(f"{m} imports {dep}")
    assert not bad, bad


def test_platform_models_do_not_import_torch_and_the_runtime_holds_the_live_code() -> None:
    code = "import sys, hwmodels, hwmodels.model, hwmodels.profile, hwmodels.config, hwmodels.fit; assert 'torch' not in sys.modules"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    hw = {f.stem for f in (REPO / "hwmodels").glob("*.py")}
    assert not hw & {"live", "board", "loadgen", "load_worker", "profiler"}
    assert {"sysfs", "dvfs", "sensors", "load", "board", "loadgen", "profiler", "session"} <= {f.stem for f in (REPO / "runtime").glob("*.py")}


def test_runtime_and_policy_never_import_stable_baselines3() -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None; sys.modules['sb3_contrib'] = None\n"
        "import runtime.session, runtime.cli, agents.numpy_policy, agents.controllers\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
