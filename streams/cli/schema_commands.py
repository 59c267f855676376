"""``jointuse schemas``: check and publish the governed Avro schemas."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli.exits import fail
from streams.cli.options import PolicyOption, SchemasOption, policies_of, schema_dir_of
from streams.errors import Exit, SchemaError
from streams.serde.compatibility import check_backward, schema_versions
from streams.settings import load_settings

schema_app = typer.Typer(help="Check and publish the governed Avro schemas.", no_args_is_help=True)


@schema_app.command("check")
def schema_check(
    schemas: SchemasOption = None,
    policy: PolicyOption = None,
) -> None:
    """Check the governed schemas: each version reads data of every earlier one (backward,
    transitive), and everything a worker builds from them under every policy version builds.

    Example: jointuse schemas check
    """
    from streams.serde.preflight import runtime_problems

    schemas = schema_dir_of(schemas)
    try:
        groups = schema_versions(schemas)
        problems = [str(p) for versions in groups.values() for p in check_backward(versions)]
    except SchemaError as exc:
        fail(str(exc))
    problems += runtime_problems(schemas, policies_of(policy))
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(Exit.PROBLEMS)
    for name, versions in groups.items():
        typer.echo(f"ok: {name}: {', '.join(p.name for p in versions)} backward compatible")


@schema_app.command("publish")
def schema_publish(
    registry: Annotated[str | None, typer.Option("--registry", help="Schema registry URL.")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Topic name prefix.")] = None,
    policy: PolicyOption = None,
) -> None:
    """Register the governed versions, oldest first, under every joint user's ingest subject, and
    set each subject's compatibility to BACKWARD. Producers then write with
    auto.register.schemas=false and use.latest.version=true. Idempotent.

    Example: jointuse schemas publish
    """
    from streams.serde.governed import GovernedSchemas
    from streams.serde.registry import Registry
    from streams.topology import Topology

    settings = load_settings(schema_registry_url=registry, topic_prefix=prefix)
    policies = policies_of(policy)
    try:
        governed = GovernedSchemas.load(settings.schema_dir)
        client = Registry(settings.registry_conf())
        topology = Topology(settings.topic_prefix)
        for company in sorted({u.id for p in policies.versions for u in p.joint_users}):
            subject = f"{topology.ingest(company)}-value"
            for version in governed.versions:
                schema_id = client.register(subject, version.classified.raw)
                typer.echo(f"{subject}: {version.name} id {schema_id}")
            client.set_compatibility(subject, "BACKWARD")
    except SchemaError as exc:
        fail(str(exc))
