"""The ``jointuse`` command line.

Exit codes (every command):
  0  success (for ``filter``: all input was read, whatever the decisions)
  1  the command ran and found problems (``policy check``, ``schema check``, ``policy diff`` needing consent)
  2  bad arguments, an unreadable or invalid policy or schema file, or a missing service
  3  a Kafka or schema-registry error while running
  70 a worker stopped on a fatal Kafka error; restarted, it resumes from the last committed transaction
"""

from __future__ import annotations

import math
import sys

import typer

from streams.cli import (
    access_commands,
    audit_commands,
    catalog_command,
    dq_commands,
    filter_command,
    incident_commands,
    infra_commands,
    policy_commands,
    provide_command,
    replay_commands,
    rights_commands,
    schema_commands,
    stats_commands,
)
from streams.cli.exits import fail
from streams.errors import JointUseError

app = typer.Typer(
    name="jointuse",
    help="Joint use (共同利用) of customer records across group companies over Kafka.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    epilog="Exit codes: 0 ok; 1 problems found; 2 bad arguments or files; 3 Kafka/registry error; "
    "70 a worker stopped on a fatal Kafka error (restart it).",
)


@app.callback()
def _cli_logging() -> None:
    """Warnings of any library, the Kafka clients' included, as JSON lines on stderr, each cause
    once while the command runs (a worker command configures its own level and a line per cause
    and minute when it starts)."""
    from streams.logs import configure

    configure("WARNING", fold_seconds=math.inf)


# Every command is declared in its module on a Typer, and added here, one way: a module's
# ``top_level`` Typer (added without a name) holds commands of ``jointuse`` itself; each other Typer
# is a group, named here. ``jointuse --help`` lists the top-level commands first, then the groups,
# each in the order added.
app.add_typer(infra_commands.top_level)  # generate, produce, consume, worker, lag, demo
app.add_typer(rights_commands.top_level)  # index
app.add_typer(provide_command.top_level)  # provide, supervision
app.add_typer(replay_commands.top_level)  # replay
app.add_typer(catalog_command.top_level)  # catalog
app.add_typer(filter_command.top_level)  # filter
app.add_typer(policy_commands.policy_app, name="policy")
app.add_typer(schema_commands.schema_app, name="schemas")
app.add_typer(schema_commands.schema_app, name="schema", hidden=True)  # the singular, for scripts that still use it
app.add_typer(access_commands.access_app, name="access")
app.add_typer(audit_commands.audit_app, name="audit")
app.add_typer(incident_commands.incident_app, name="incident")
app.add_typer(stats_commands.stats_app, name="stats")
app.add_typer(infra_commands.topics_app, name="topics")
app.add_typer(rights_commands.rights_app, name="rights")
app.add_typer(rights_commands.retention_app, name="retention")
app.add_typer(dq_commands.dq_app, name="dq")


def main() -> None:
    try:
        app()
    except JointUseError as exc:  # one of ours that escaped a command: a bad setting (2), a service (3), ...
        try:
            fail(exc)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
