"""Progress on the terminal for the commands that take a while: one look for all of them."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def range_progress(description: str) -> Progress:
    """For a known amount of work (a range of a topic): done of total, rate, time left."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
    )


def count_progress(description: str, *, disable: bool = False) -> Progress:
    """For work of unknown size (records from a file or stdin): how many so far, time taken."""
    return Progress(
        TextColumn(description),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        disable=disable,
        transient=True,
    )
