"""The CLI's consoles and its one way to fail: a red `error:` line on stderr, exit status 1."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    # Messages quote user input and paths: never let them be read as rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)
