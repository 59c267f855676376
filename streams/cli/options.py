"""Command-line options shared by several commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import fail
from streams.errors import PolicyError
from streams.policy.loader import PolicySet, load_policies
from streams.settings import load_settings

PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy file or directory of versions (default: JOINTUSE_POLICY_PATH)."),
]
SchemasOption = Annotated[
    Path | None, typer.Option("--schemas", help="Directory of Avro schemas (default: JOINTUSE_SCHEMA_DIR).")
]
SchemaVersion = Annotated[
    str | None,
    typer.Option(
        "--schema-version",
        help="Governed version of the customer record in JOINTUSE_SCHEMA_DIR, e.g. 1 (default: the latest).",
    ),
]


class FaustLogLevel(StrEnum):
    """The levels faust's worker takes."""

    CRIT = "crit"
    ERROR = "error"
    WARN = "warn"
    INFO = "info"
    DEBUG = "debug"


FaustLogLevelOption = Annotated[
    FaustLogLevel, typer.Option("--log-level", help="crit, error, warn, info, debug.", case_sensitive=False)
]


def policies_of(path: Path | None) -> PolicySet:
    """The policy versions ``--policy`` names, or the deployment's (``JOINTUSE_POLICY_PATH``)."""
    try:
        return load_policies(path or load_settings().policy_path)
    except PolicyError as exc:
        fail(str(exc))


def schema_dir_of(path: Path | None) -> Path:
    """The schemas directory given, or the deployment's (``JOINTUSE_SCHEMA_DIR``); it must exist."""
    directory = path or load_settings().schema_dir
    if not directory.is_dir():
        fail(f"{directory}: not a directory of schemas")
    return directory


def _joint_users() -> frozenset[str]:
    """The notice's joint users. A bad setting or policy file is not a bad option: its error goes
    to ``main`` as every command's does (one line naming the setting or the file, exit 2)."""
    return frozenset(load_policies(load_settings().policy_path).latest.users_by_id)


def joint_user(value: str | list[str] | None) -> str | list[str] | None:
    """A company option's check, before any network call: each name is a joint user of the notice
    in force (``JOINTUSE_POLICY_PATH``)."""
    if value is None:
        return None
    known = _joint_users()
    if any(name not in known for name in ([value] if isinstance(value, str) else value)):
        raise typer.BadParameter(f"not a joint user of the notice (joint users: {', '.join(sorted(known))})")
    return value
