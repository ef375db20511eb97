"""The house rules a machine can check: one-way layers, a cheap `import zoo`, small functions, no private
names crossing modules."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoo"
HEAVY = ("torch", "onnx", "onnxruntime", "timm", "matplotlib")


def _imported_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; {code}; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


def test_import_zoo_and_help_load_no_heavy_library():
    assert not _imported_modules("import zoo") & set(HEAVY)
    assert not _imported_modules("import contextlib, io, zoo.cli as c\n"
                                 "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):"
                                 " c.main(['--help'])") & set(HEAVY)


def test_lazy_face_resolves_and_rejects():
    import zoo

    assert zoo.create_model("mlp", "mnist") is not None and "resnet20" in zoo.list_models()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        zoo.nope  # noqa: B018


def test_layer_contract_holds():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    r = subprocess.run([lint], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert r.returncode == 0 and "1 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def _trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent), ast.parse(path.read_text())


def test_no_function_over_60_lines():
    long = [f"{p}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p, tree in _trees() for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long


def test_no_private_name_imported_across_modules():
    crossing = [f"{p}: from {n.module} import {a.name}" for p, tree in _trees() for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("zoo")
                for a in n.names if a.name.startswith("_") and a.name != "__version__"]
    assert not crossing
