"""The one way a command ends with an error: a line on stderr and a documented exit code."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import NoReturn

import typer

from streams.errors import ClusterError, Exit, JointUseError, exit_code_of
from streams.kafka.tls import TlsError, diagnose
from streams.settings import load_settings


def fail(problem: str | BaseException, code: Exit = Exit.USAGE) -> NoReturn:
    """One line on stderr and the exit code. For one of our errors the code is its kind's
    (``exit_code_of``): a bad setting met while talking to Kafka is still the user's to fix (2)."""
    if isinstance(problem, JointUseError):
        problem = explained(problem)
        code = exit_code_of(problem)
    typer.echo(f"jointuse: {problem}", err=True)
    raise typer.Exit(int(code))


def explained(error: JointUseError) -> JointUseError:
    """The error, or what lies under it: over TLS, a broker that "did not answer" may have answered
    with a certificate the client does not trust, or refused its own. The session is tried once more
    with the same settings (and the command's ``--bootstrap``) to say which."""
    if not isinstance(error, ClusterError) or isinstance(error, TlsError) or "no Kafka broker" not in str(error):
        return error
    try:
        diagnose(load_settings(bootstrap_servers=_option("--bootstrap")))
    except JointUseError as cause:
        return cause
    return error


def _option(name: str) -> str | None:
    """A command-line option's value as the user typed it (``--name value`` or ``--name=value``)."""
    for index, arg in enumerate(sys.argv):
        if arg == name and index + 1 < len(sys.argv):
            return sys.argv[index + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    return None


class Runtime(StrEnum):
    FAUST = "faust"
    CONFLUENT = "confluent"


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


class Lang(StrEnum):
    JA = "ja"
    EN = "en"
