"""Command-line options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

SchemaVersion = Annotated[
    str | None,
    typer.Option(
        "--schema-version",
        help="Governed version of the customer record in JOINTUSE_SCHEMA_DIR, e.g. 1 (default: the latest).",
    ),
]
