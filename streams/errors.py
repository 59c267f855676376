"""The project's exception hierarchy.

Every error raised by jointuse derives from ``JointUseError``. Third-party errors are wrapped once,
at the boundary where they enter our code (``raise ... from exc``). Messages name fields, rules,
files and lines, and never contain field values.
"""

from __future__ import annotations

from enum import IntEnum


class JointUseError(Exception):
    """Root of every error jointuse raises."""


class ConfigError(JointUseError):
    """Settings or command-line arguments are unusable."""


class PolicyError(JointUseError):
    """A policy file is missing, malformed or inconsistent.

    ``source`` names the file, ``line`` the 1-based line when known.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = source or "<policy>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class SchemaError(JointUseError):
    """An Avro schema is malformed, unclassified or incompatible."""


class SerdeError(JointUseError):
    """A value could not be (de)serialised.

    ``original`` keeps the raw input (bytes of a Kafka message, or a JSON line) so that a dead-letter
    path can republish it; it never goes into the message text.
    """

    def __init__(self, message: str, *, reason: str, original: bytes | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.original = original


class RegistryError(JointUseError):
    """The schema registry could not be reached or refused a request."""


class ClusterError(JointUseError):
    """The Kafka cluster could not be reached or refused a request (named apart from
    confluent_kafka.KafkaError, which modules also use)."""


class SubjectIndexUnavailable(JointUseError):
    """The subject index did not answer, is rebuilding its rows, or is behind the audit topic."""


# Failures of a dependency, not of a record: the batch is retried; they never make a dead letter.
DEPENDENCY_ERRORS: tuple[type[JointUseError], ...] = (RegistryError, ClusterError, SubjectIndexUnavailable)


class Exit(IntEnum):
    """Every documented exit code of the commands and the worker (docs/commands.md, docs/worker.md)."""

    OK = 0
    PROBLEMS = 1  # the command ran and found problems (rejected lines, failed checks, a diff needing consent)
    USAGE = 2  # what the user can fix: a setting, an option, a policy, schema or input file
    SERVICE = 3  # Kafka, the registry or the subject index did not answer, or refused
    FATAL = 70  # a worker cannot go on; restarted, it resumes from the last committed transaction


class FatalError(Exception):
    """The loop cannot go on; the worker must stop (and be restarted: it resumes from the last
    committed transaction)."""


def exit_code_of(error: BaseException) -> Exit:
    """The exit code of a command or worker that stops with ``error``: a failing dependency is a
    service's, a fatal error the worker's, anything else the user's to fix."""
    if isinstance(error, FatalError):
        return Exit.FATAL
    if isinstance(error, DEPENDENCY_ERRORS):
        return Exit.SERVICE
    return Exit.USAGE
