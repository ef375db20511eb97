"""Terminal output shared by the commands."""

from __future__ import annotations

from rich.console import Console


def console():
    """rich's print, 120 columns wide when the output is not a terminal (pipes, CI logs)."""
    c = Console()
    if not c.is_terminal:
        c = Console(width=120)
    return c.print
