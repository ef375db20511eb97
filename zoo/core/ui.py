"""Terminal output shared by the commands."""

from __future__ import annotations


def console():
    """rich's print, 120 columns wide when the output is not a terminal (pipes, CI logs)."""
    from rich.console import Console

    c = Console()
    if not c.is_terminal:
        c = Console(width=120)
    return c.print
