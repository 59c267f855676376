"""The one way a command ends with an error: a line on stderr and a documented exit code."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NoReturn

import typer

from streams.errors import EXIT_SERVICE, EXIT_USAGE, JointUseError, exit_code_of
from streams.runtime.loop import EXIT_FATAL


class Exit(IntEnum):
    OK = 0
    PROBLEMS = 1  # the command ran and found problems (rejected lines, failed checks, a diff needing consent)
    USAGE = EXIT_USAGE  # bad arguments or settings, an unreadable or invalid policy, schema or input file
    SERVICE = EXIT_SERVICE  # Kafka, the schema registry or the subject index did not answer
    FATAL = EXIT_FATAL  # a worker stopped on a fatal Kafka error; restarted, it resumes from the last commit


def fail(problem: str | BaseException, code: Exit = Exit.USAGE) -> NoReturn:
    """One line on stderr and the exit code. For one of our errors the code is its kind's
    (``exit_code_of``): a bad setting met while talking to Kafka is still the user's to fix (2)."""
    if isinstance(problem, JointUseError):
        code = Exit(exit_code_of(problem))
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
