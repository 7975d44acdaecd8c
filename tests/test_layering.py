"""The house plan holds: data flows one way (data -> models -> train -> planning -> evaluation -> pipeline/cli),
project imports sit at module level, and every source file stays small."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module prefix -> layer; a module may import its own layer and the layers below it, never one above
LAYERS = {
    "worldmodel.config": 0, "worldmodel.utils": 0,
    "envs": 1, "worldmodel.data": 1,
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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(tree: ast.AST):
    """(imported module, line, at module level?) for every import of a project module."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in names if layer(n) is not None][:1] or []
        for name in names:
            if layer(name) is not None:
                yield name, node.lineno, id(node) in top


def sources():
    return sorted(p for d in ("worldmodel", "envs") for p in (ROOT / d).rglob("*.py"))


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


def test_the_check_catches_a_back_edge(tmp_path):
    bad = ROOT / "worldmodel" / "models" / "_probe_back_edge.py"
    try:
        bad.write_text("from worldmodel.planning.mpc import run_episodes\n")
        assert len(back_edges([bad])) == 1
    finally:
        bad.unlink()


def test_project_imports_are_at_module_level():
    inner = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sources()
             for name, line, top in project_imports(ast.parse(p.read_text())) if not top]
    assert inner == []


def test_source_files_stay_small():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in sources() + sorted((ROOT / "scripts").glob("*.py"))
           if (n := len(p.read_text().splitlines())) > 400]
    assert big == []
