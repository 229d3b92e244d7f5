"""The progress bar every long loop shows: what it is doing, a bar, done/total, time elapsed and time left.

On the console given — the CLI gives stderr, so stdout stays the command's output — and transient: the bars
go when the work is done, leaving the results. The computing code itself reports through plain callbacks
(`bastion.console.bars` adapts those); this is for the evaluations, which render with rich anyway.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def bar(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=True,
    )
