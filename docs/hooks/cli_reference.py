"""MkDocs hook: the CLI reference page is the real parser's help, rendered at build time, so it cannot drift.

A page holding the line `<!-- zoo-cli-reference -->` gets, in its place, `zoo --help` and every command's
`--help` as argparse prints them (80 columns). `tests/test_docs.py` renders the same text.
"""

from __future__ import annotations

import os

MARKER = "<!-- zoo-cli-reference -->"


def cli_reference() -> str:
    """Markdown: one section per command, its help as the parser prints it."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width; a fixed one for the page
    from zoo.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = ["## zoo", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        parts += [f"## zoo {name}", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001  (MkDocs' hook signature)
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
