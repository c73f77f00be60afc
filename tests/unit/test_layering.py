"""The library's shape: core/ never imports streamlit, imports point down the layers, no cycles, `import core` is light.

Every import counts here, module-level or inside a function: a function-local import that reaches upward (the usual
way to dodge a cycle) fails the layer test just like a top-level one.
"""
from __future__ import annotations

import ast
import collections
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "core"

# Bottom → top. A module may import modules of its own layer or below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("core.errors", "core.settings", "core.convert", "core.versions", "core.style", "core.archive",
     "core.tables", "core.preferences"),
    ("core.results", "core.io", "core.examples"),
    ("core.models", "core.forensics"),                # everything inside models/ except the three below
    ("core.models.factory",),
    ("core.models.install", "core.models.selection"),
    ("core.verdict",),
    ("core.evaluation", "core.report", "core.video"),
    ("core.cli", "core.api", "core.__main__", "core"),
]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in CORE.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Every core module ``name`` imports (resolved to the longest known module)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = subs + ([base] if len(subs) < len(node.names) else [])    # `from pkg import name` → pkg
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name and t.startswith("core"):
                out.add(t)
    return out


def _layer(name: str) -> int:
    best, best_len = -1, -1
    for i, members in enumerate(LAYERS):
        for m in members:
            if (name == m or name.startswith(m + ".")) and len(m) > best_len and not (m == "core" and name != "core"):
                best, best_len = i, len(m)
    return best


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def test_core_never_imports_streamlit():
    files = list(CORE.rglob("*.py"))
    assert files
    for f in files:
        tree = ast.parse(f.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "streamlit" not in names, f


def test_every_core_module_has_a_layer():
    unplaced = [m for m in _modules() if _layer(m) < 0]
    assert not unplaced, f"add these modules to LAYERS: {unplaced}"


def test_imports_point_down_the_layers():
    upward = []
    for mod, deps in _graph().items():
        if mod in ("core", "core.__main__"):
            continue
        for dep in deps:
            if dep == "core":
                upward.append(f"{mod} imports the package root core (import the defining module instead)")
            elif _layer(dep) > _layer(mod):
                upward.append(f"{mod} (layer {_layer(mod)}) imports {dep} (layer {_layer(dep)})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_the_cycle_check_catches_a_cycle(tmp_path):
    """The walker itself works: two modules importing each other are found by the same resolver."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from core.b import x\n")
    b.write_text("def f():\n    from core.a import y\n")
    known = {"core.a", "core.b"}
    assert _imports("core.a", a, known) == {"core.b"}
    assert _imports("core.b", b, known) == {"core.a"}       # a function-local import counts


PURE = ["core", "core.settings", "core.convert", "core.results", "core.errors", "core.io",
        "core.evaluation.metrics", "core.verdict.ensemble", "core.models.specs"]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_not_load_torch(module):
    code = f"import sys, importlib; importlib.import_module({module!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", f"importing {module} loaded torch"


def test_public_api_is_lazy_but_complete():
    import core
    for name in core.__all__:
        assert getattr(core, name) is not None
    with pytest.raises(AttributeError):
        core.no_such_name  # noqa: B018


def test_no_core_or_ui_module_is_too_long():
    long = []
    for p in list(CORE.rglob("*.py")) + list((ROOT / "ui").rglob("*.py")):
        n = sum(1 for _ in p.open(encoding="utf-8"))
        if n > 500:
            long.append(f"{p.relative_to(ROOT)}: {n} lines")
    assert not long, long


def test_one_yaml_per_detector_id():
    import yaml
    ids = collections.Counter()
    for p in sorted((ROOT / "configs" / "detectors").glob("*.y*ml")):
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        ids[data.get("id")] += 1
    assert ids and all(n == 1 for n in ids.values()), ids


def test_no_core_or_ui_function_is_too_long():
    long = []
    for p in list(CORE.rglob("*.py")) + list((ROOT / "ui").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{p.relative_to(ROOT)}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long
