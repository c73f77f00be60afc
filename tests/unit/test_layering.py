"""core/ is a pure library: no streamlit import anywhere below it."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_core_never_imports_streamlit():
    files = list((ROOT / "core").rglob("*.py"))
    assert files
    for f in files:
        tree = ast.parse(f.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "streamlit" not in names, f
