"""The house plan holds: data flows one way (data -> models -> train -> planning -> evaluation -> pipeline/cli),
through ``import``, ``from worldmodel import x`` and ``importlib`` alike; no import cycle, within a layer either;
project imports sit at module level, and every source file stays small."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# module prefix -> layer; a module may import its own layer and the layers below it, never one above
LAYERS = {
    "worldmodel.config": 0, "worldmodel.configs": 0, "worldmodel.utils": 0, "worldmodel.contracts": 0,
    "worldmodel.envs": 1, "worldmodel.data": 1,
    "worldmodel.models": 2, "worldmodel.probes": 2, "worldmodel.masks": 2, "worldmodel.losses": 2,
    "worldmodel.train": 3,
    "worldmodel.planning": 4,
    "worldmodel.evaluation": 5,
    "worldmodel.pipeline": 6, "worldmodel.commands": 6, "worldmodel.confighelp": 6, "worldmodel.bench": 6,
    "worldmodel.cli": 6, "worldmodel.stages": 6,
}


def layer(module: str) -> int | None:
    """Layer of a dotted module name (longest matching prefix), None for modules outside the project."""
    if module == "worldmodel":  # the package itself (its __init__ is empty)
        return 0
    best = None
    for prefix, rank in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return None if best is None else best[1]


MAPPED = {"envs": "worldmodel.envs", "configs": "worldmodel.configs"}  # top-level folders installed in the package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts = MAPPED.get(parts[0], parts[0]).split(".") + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


IMPORTERS = ("import_module", "__import__")  # importlib.import_module("worldmodel.x"), __import__("worldmodel.x")


def project_imports(tree: ast.AST):
    """(imported module or name, line, at module level?) for every import of a project module: ``import a.b``,
    ``from a import b`` (as ``a.b``: ``from worldmodel import pipeline`` is an import of ``worldmodel.pipeline``) and
    importlib calls with a literal module name."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in IMPORTERS:
            names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        for name in names:
            if layer(name) is not None:
                yield name, node.lineno, id(node) in top


def sources():
    return sorted(p for d in ("worldmodel", *MAPPED) for p in (ROOT / d).rglob("*.py"))


def back_edges(files) -> list[str]:
    """Every import that points up the layers, as 'file:line: importer (layer) -> imported (layer)'."""
    bad = []
    for path in files:
        me = module_name(path)
        mine = layer(me)
        assert mine is not None, f"{me} has no layer in tests/test_layering.py: place it in the house plan"
        for name, line, _ in project_imports(ast.parse(path.read_text())):
            if layer(name) > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {me} ({mine}) -> {name} ({layer(name)})")
    return bad


def test_no_module_imports_a_layer_above_it():
    assert back_edges(sources()) == []


@pytest.mark.parametrize("line", ["from worldmodel.planning.mpc import run_episodes", "from worldmodel import pipeline",
                                  "import importlib\nimportlib.import_module('worldmodel.planning.mpc')"])
def test_the_check_catches_a_back_edge(line):
    bad = ROOT / "worldmodel" / "models" / "_probe_back_edge.py"
    try:
        bad.write_text(line + "\n")
        assert len(back_edges([bad])) == 1
    finally:
        bad.unlink()


def owner(name: str, modules: set[str]) -> str | None:
    """The project module an imported name belongs to (``a.b.func`` -> ``a.b``), None outside the project."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def cycles(files) -> list[list[str]]:
    """Import cycles among the project's modules (strongly connected components of more than one module)."""
    modules = {module_name(p): p for p in files}
    graph = {m: {o for n, _, _ in project_imports(ast.parse(p.read_text())) if (o := owner(n, set(modules))) and o != m}
             for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(m: str) -> None:  # Tarjan's algorithm
        index[m] = low[m] = len(index)
        stack.append(m)
        for o in graph[m]:
            if o not in index:
                visit(o)
                low[m] = min(low[m], low[o])
            elif o in stack:
                low[m] = min(low[m], index[o])
        if low[m] == index[m]:
            comp = []
            while True:
                comp.append(stack.pop())
                if comp[-1] == m:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles():
    assert cycles(sources()) == []


def test_the_check_catches_a_cycle(tmp_path):
    a, b = ROOT / "worldmodel" / "models" / "_probe_a.py", ROOT / "worldmodel" / "models" / "_probe_b.py"
    try:
        a.write_text("from worldmodel.models._probe_b import x\n")
        b.write_text("from worldmodel.models import _probe_a\n")
        assert cycles(sources()) == [["worldmodel.models._probe_a", "worldmodel.models._probe_b"]]
    finally:
        a.unlink()
        b.unlink()


def test_project_imports_are_at_module_level():
    """Everywhere but in the ``wm`` entry point, whose ``_main`` imports the commands when it runs: a collection
    worker process re-imports the entry module (multiprocessing's spawn start) and must not pay for torch there."""
    entry = ROOT / "worldmodel" / "cli.py"
    inner = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sources()
             for name, line, top in project_imports(ast.parse(p.read_text())) if not top and p != entry]
    assert inner == []
    assert "torch" not in subprocess.run([sys.executable, "-c", "import sys, worldmodel.cli, worldmodel.data.collect; "
                                          "print(sorted(sys.modules))"], capture_output=True, text=True).stdout


def test_source_files_stay_small():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sources() + sorted((ROOT / "scripts").glob("*.py"))
           if (n := len(p.read_text().splitlines())) > 400]
    assert big == []


def test_every_package_is_installed():
    """pyproject's explicit package list (needed for the envs/ and configs/ mapping) names every package folder."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {module_name(p) for d in ("worldmodel", *MAPPED) for p in (ROOT / d).rglob("__init__.py")}
    assert set(tool["packages"]) == found
    assert tool["package-dir"] == {v: k for k, v in MAPPED.items()}


def test_the_planning_path_stays_small():
    """One planning path: the controller takes at most six arguments and never inspects the model (capabilities
    are resolved once, in planning/observer.py); ``wm plan``'s run reads as a short sequence of named steps."""
    tree = ast.parse((ROOT / "worldmodel" / "planning" / "mpc.py").read_text())
    ctrl = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PlannerController")
    init = next(n for n in ctrl.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert len(init.args.args) - 1 + len(init.args.kwonlyargs) <= 6
    checks = [n.func.id for n in ast.walk(ctrl) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id in ("isinstance", "getattr", "hasattr")]
    assert checks == []
    run = next(n for n in ast.parse((ROOT / "worldmodel" / "planning" / "evaluate.py").read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert run.end_lineno - run.lineno + 1 <= 50


CONFIG_MODULES = ("worldmodel.config", "worldmodel.commands", "worldmodel.cli", "worldmodel.confighelp",
                  "worldmodel.pipeline", "worldmodel.bench")  # the command layer and the config plumbing


def test_hydra_stays_in_the_command_layer():
    """Library modules take plain values and dataclasses; hydra and OmegaConf are imported only where commands
    are composed and run."""
    users = []
    for path in sources():
        me = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("hydra", "omegaconf") for n in names) and not me.startswith(CONFIG_MODULES):
                users.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert users == []
