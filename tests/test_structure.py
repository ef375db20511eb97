"""The house rules a machine can check: one-way layers, a cheap `import zoo`, small functions, no private
names crossing modules."""

import ast
import re
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
    assert r.returncode == 0 and "2 kept, 0 broken" in r.stdout, r.stdout[-2000:]  # layers; no circles inside


def _trees(*folders: Path):
    for path in sorted(p for folder in folders or (PACKAGE,) for p in folder.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent), ast.parse(path.read_text())


def test_no_function_over_60_lines():
    long = [f"{p}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p, tree in _trees() for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long


def test_no_private_name_imported_across_modules():
    """Inside the package, and from the benchmarks' tools, which use zoo as any program would."""
    crossing = [f"{p}: from {n.module} import {a.name}" for p, tree in _trees(PACKAGE, PACKAGE.parent / "benchmarks")
                for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("zoo")
                for a in n.names if a.name.startswith("_") and a.name != "__version__"]
    assert not crossing


# Words that tell the user what to do, or the values that would do ("must be", "choose from", "e.g."); a message
# may also take its advice from a helper (close_matches, missing_runtime, read_advice, REMAKE) or a variable
# computed for the case (todo, keep, advice, step, why).
ADVICE = re.compile(r"\b(choose|give|pass|use|run|export|re-copy|train|drop|add|set|install|reinstall|free|move|"
                    r"keep|pick|write|save|fix|delete|restore|start|point|let|copy|resume|try|put|remove|fetch|check|"
                    r"make|send|publish|register|leave out|must be|needs?|takes?|only|at least|up to)\b|e\.g\.", re.I)
ADVISING_NAMES = {"todo", "keep", "advice", "step", "why", "close_matches", "missing_runtime", "read_advice", "REMAKE"}
# Errors caught inside zoo and turned into a step, never shown alone: a damaged checkpoint (resume falls back to
# the newest good one, or says to start again) and a stale cached export (exported again).
CAUGHT = {("zoo/train/rundir.py", "_load_dir"), ("zoo/export/cache.py", "_reuse_or_export")}


def _message_forms(node):
    """(literal text, names used) for each form a message expression can take (both arms of an `if` expression)."""
    if isinstance(node, ast.IfExp):
        return _message_forms(node.body) + _message_forms(node.orelse)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [(node.value, set())]
    if isinstance(node, ast.JoinedStr):
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        return [(text, {n.id for n in ast.walk(node) if isinstance(n, ast.Name)})]
    if isinstance(node, ast.BinOp):
        return [(a + b, na | nb) for a, na in _message_forms(node.left) for b, nb in _message_forms(node.right)]
    return [("{}", {n.id for n in ast.walk(node) if isinstance(n, ast.Name)})]


def _says_what_to_do(text: str, names: set[str]) -> bool:
    passes_on = not re.search(r"[a-z]{2}", text.replace("{}", ""))  # "{}: {}": another error's message, with context
    return passes_on or bool(ADVICE.search(text) or names & ADVISING_NAMES)


def test_every_error_says_what_to_do():
    silent = []
    for path, tree in _trees():
        caught = {id(c) for fn in ast.walk(tree) if (str(path), getattr(fn, "name", "")) in CAUGHT
                  for c in ast.walk(fn)}
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "ZooError" and call.args \
                    and id(call) not in caught:
                silent += [f"{path}:{call.lineno}: {text}" for text, names in _message_forms(call.args[0])
                           if not _says_what_to_do(text, names)]
    assert not silent, "\n".join(silent)


def test_a_runtime_is_named_only_in_the_files_contributing_md_lists_for_one():
    """docs/contributing.md's "Add a runtime" names the files a runtime touches; no other module names one as a
    string (a comparison, a table of its own), so that adding a runtime touches those files alone. onnxruntime,
    the reference every other runtime is compared with, is named where it is the default."""
    from zoo.core.runtimes import RUNTIMES

    docs = (PACKAGE.parent / "docs" / "contributing.md").read_text()
    section = docs.split("## Add a runtime", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(zoo/[\w/]+\.py)`", section))
    assert listed and all((PACKAGE.parent / f).is_file() for f in listed), listed
    naming = {str(path) for path, tree in _trees() for n in ast.walk(tree)
              if isinstance(n, ast.Constant) and n.value in set(RUNTIMES) - {"onnxruntime"}}
    assert naming and naming <= listed, sorted(naming - listed)


@pytest.mark.e2e
def test_adding_a_runtime_as_contributing_md_says_is_a_row_and_a_backend(tmp_path):
    """docs/contributing.md's "Add a runtime", followed in a copy of the package: a row in RUNTIMES and a backend
    class with its BACKENDS entry, nothing else; `zoo predict --runtime` and `zoo bench --runtime` then run it."""
    import json

    copy = tmp_path / "zoo"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "_weights").symlink_to(PACKAGE.parent / "weights", target_is_directory=True)  # as the wheel has them
    table = copy / "core" / "runtimes.py"
    assert table.read_text().count("\n)}") == 1
    table.write_text(table.read_text().replace(
        "\n)}", '\n    RuntimeFacts("toyrt", None, None, ("onnxruntime",), ("fp32",)),\n)}'))
    backends = copy / "core" / "backends.py"
    backends.write_text(backends.read_text() + (
        '\n\nclass ToyBackend(OrtBackend):\n    """onnxruntime under another name."""\n'
        '\n\nBACKENDS["toyrt"] = lambda threads, hint: ToyBackend("CPUExecutionProvider", threads)\n'))
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def zoo(*args):
        done = subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-1500:]
        return done.stdout
    out = json.loads(zoo("predict", "cnn", "mnist", "--runtime", "toyrt", "--json"))
    assert out[0]["runtime"] == "toyrt" and out[0]["file"].startswith(str(tmp_path))
    onnx = next((PACKAGE.parent / "weights" / "exports").glob("*/cnn.mnist.onnx"))
    zoo("bench", "--onnx", str(onnx), "--runtime", "toyrt", "--threads", "1", "--warmup", "1", "--repeat", "3",
        "--batch", "8", "--out", str(tmp_path / "b"))
    rows = json.loads((tmp_path / "b" / "report.json").read_text())["rows"]
    toy, ort = (next(r for r in rows if r["runtime"] == name) for name in ("toyrt", "onnxruntime"))
    assert toy["top1"] == ort["top1"]
