"""The CLI's consoles, its progress bars, and its one way to fail: a red `error:` line on stderr, exit status 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

out = Console()
err = Console(stderr=True)

# What the computing code reports: (stage, how many more done, the stage's total or None when unknown).
Advance = Callable[[str, int, "int | None"], None]


def bars() -> tuple[Progress, Advance]:
    """Progress bars on stderr (counts, elapsed, time left), one per stage, driven by a library's callback.

    Use as `progress, advance = bars()`, then `with progress: library(..., progress=advance)`."""
    from tools.progress import bar

    progress = bar(err)
    tasks: dict[str, TaskID] = {}

    def advance(stage: str, n: int, total: int | None) -> None:
        if stage not in tasks:
            for task in progress.tasks:  # a stage of unknown size is over when the next one starts
                if task.total is None:
                    progress.update(task.id, total=task.completed)
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], advance=n, total=total)

    return progress, advance


def fail(message: str) -> NoReturn:
    # Messages quote user input and paths: never let them be read as rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)
