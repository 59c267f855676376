"""Command-line options that select a range of a topic (replay, dq run)."""

from __future__ import annotations

from typing import Annotated

import typer

Partition = Annotated[int | None, typer.Option("--partition", help="Only this partition.")]
FromOffset = Annotated[int | None, typer.Option("--from-offset", help="First offset (per partition).")]
ToOffset = Annotated[int | None, typer.Option("--to-offset", help="Last offset, inclusive.")]
FromTime = Annotated[str | None, typer.Option("--from-time", help="First record time, ISO 8601 with an offset.")]
ToTime = Annotated[str | None, typer.Option("--to-time", help="End time (exclusive), ISO 8601 with an offset.")]
