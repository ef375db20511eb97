"""The README and the docs site as a user meets them: short, every command real, every link alive, and the
project speaking of itself alone."""

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCS = [REPO / "README.md", *PAGES]

# Words of a development diary: the project is described, never its history of sittings and tickets.
DIARY = re.compile(r"\b(?:this|last|next|previous|earlier|a later|that) session\b|\bsessions? \d+|\bissues? #?\d+\b"
                   r"|\bs1\d\b|\bthis\ VM\b|\buntil\ session\b", re.I)


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = [REPO / f for f in out.decode().split("\0") if f]
    return [f for f in files if f.is_file() and b"\0" not in f.read_bytes()[:8192]]


def test_readme_is_a_storefront():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)


def test_the_project_speaks_of_itself_alone():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    hits = [f"{f.relative_to(REPO)}:{n}: {m.group(0)}" for f in _tracked_text_files()
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1) for m in DIARY.finditer(line)]
    assert not hits, hits[:20]


def test_the_diary_words_are_caught():
    # written from pieces, so that this file does not hold the words it tests for
    s, i = "sess" + "ion", "iss" + "ue"
    for text in (f"as measured last {s}", f"{s.title()} 16 found", f"{i} 23's target", f"{i}s 21", "s" + "18's figures",
                 "on this " + "VM"):
        assert DIARY.search(text), text
    for text in ("an onnxruntime session", "scope='session'", "InferenceSession", "issues a warning"):
        assert not DIARY.search(text), text


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith("zoo "):
                    found.append((page.name, shlex.split(line, comments=True)[1:]))
    return found


def test_every_zoo_command_in_the_docs_parses_and_the_cheap_ones_run():
    from zoo.cli import build_parser

    commands = _commands()
    assert len(commands) >= 40, len(commands)
    parser = build_parser()
    for page, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as e:  # argparse exits on a flag the CLI no longer has
            pytest.fail(f"{page}: zoo {shlex.join(argv)} does not parse ({e})")
    for page, argv in commands:
        if argv[0] == "list" and "--fastpath" not in argv and "--deploy" not in argv:
            r = subprocess.run([sys.executable, "-m", "zoo.cli", *argv], capture_output=True, text=True)
            assert r.returncode == 0, (page, argv, r.stderr)


def _slug(heading: str) -> str:
    """The anchor MkDocs' toc extension gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", text).strip("-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_relative_link_resolves():
    broken = []
    for page in DOCS:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_cli_reference_is_the_parser_itself():
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "docs" / "hooks" / "cli_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = hook.cli_reference()
    from zoo.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in sub.choices.items():
        assert f"## zoo {name}" in text
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in text, (name, flag)
    assert hook.MARKER in (REPO / "docs" / "cli.md").read_text()


def test_the_site_has_its_pages():
    nav = (REPO / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", nav, re.M))
    assert len(listed) >= 10 and listed == {p.name for p in PAGES}, (listed, [p.name for p in PAGES])
