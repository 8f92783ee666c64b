"""dvc.yaml lists every module a stage imports (directly or through other modules), so `dvc repro` reruns it when one changes."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def module_file(name: str) -> Path | None:
    """The file of a `pipeline.*` module, or None for anything outside the package."""
    if name != "pipeline" and not name.startswith("pipeline."):
        return None
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path) -> set[Path]:
    """The package files one module imports anywhere in its body (lazy imports inside functions, and `Background`'s, too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pipeline import tracking` imports a module; `from pipeline.x import f` imports pipeline.x
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Background" and node.args:
            # Background("pipeline.tracking", ...) imports that module in its second process
            names = [node.args[0].value] if isinstance(node.args[0], ast.Constant) else []
        for name in names:
            parts = name.split(".")
            for i in range(2, len(parts) + 1):  # a submodule import runs its packages' __init__ too
                if (f := module_file(".".join(parts[:i]))) is not None:
                    found.add(f)
    return found


def has_code(path: Path) -> bool:
    """False for a package __init__ that is only a docstring: importing it changes nothing."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def closure(path: Path) -> set[str]:
    """Every package file `path` reaches through imports, as paths relative to the repository."""
    seen, todo = set(), [path]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo += imported(f)
    return {str(f.relative_to(ROOT)) for f in seen if has_code(f)}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_its_import_closure(stage):
    cmd = STAGES[stage]["cmd"]
    # `python -m pipeline NAME` dispatches through cli.py to pipeline/NAME.py's main; the
    # dispatcher itself does not change what a stage computes, so it is not a dependency.
    assert cmd == f"python -m pipeline {stage}", cmd
    needed = closure(ROOT / "pipeline" / f"{stage}.py")
    listed = {d for d in STAGES[stage]["deps"] if d.startswith("pipeline/")}
    assert not needed - listed, f"dvc.yaml:{stage} deps miss {sorted(needed - listed)}"
    assert not listed - needed, f"dvc.yaml:{stage} deps list {sorted(listed - needed)}, which it never imports"


def test_closure_follows_lazy_and_indirect_imports():
    got = closure(ROOT / "pipeline" / "train.py")
    # train imports tracking inside main(); tracking imports runs, which imports config
    assert {"pipeline/tracking.py", "pipeline/runs.py", "pipeline/config.py"} <= got


def test_dvc_lock_records_the_code_as_it_is():
    """The committed dvc.lock names every stage's code as it is in the tree: a change without `dvc repro` fails here, not in a fresh clone's `git status`."""
    import hashlib

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    stale = [
        f"{stage}: {dep['path']}"
        for stage, spec in lock.items()
        for dep in spec.get("deps", [])
        if dep["path"].startswith("pipeline/")
        and hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest() != dep["md5"]
    ]
    assert not stale, f"dvc.lock is older than the code (run `dvc repro` and commit dvc.lock): {stale}"
