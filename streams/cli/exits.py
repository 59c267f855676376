"""The one way a command ends with an error: a line on stderr and a documented exit code."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NoReturn

import typer

from streams.runtime.loop import EXIT_FATAL


class Exit(IntEnum):
    OK = 0
    PROBLEMS = 1  # the command ran and found problems (rejected lines, failed checks, a diff needing consent)
    USAGE = 2  # bad arguments, an unreadable or invalid policy or schema file, a missing setting
    SERVICE = 3  # a Kafka or schema-registry error while running
    FATAL = EXIT_FATAL  # a worker stopped on a fatal Kafka error; restarted, it resumes from the last commit


def fail(problem: str | BaseException, code: Exit = Exit.USAGE) -> NoReturn:
    typer.echo(f"jointuse: {problem}", err=True)
    raise typer.Exit(int(code))


class Guarantee(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class Runtime(StrEnum):
    FAUST = "faust"
    CONFLUENT = "confluent"


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


class Lang(StrEnum):
    JA = "ja"
    EN = "en"
