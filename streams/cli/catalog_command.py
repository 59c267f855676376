"""``jointuse catalog``: the topic contract a group company's tools and engineers read."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from streams.cli.exits import fail
from streams.errors import Exit, JointUseError
from streams.settings import Settings, load_settings

if TYPE_CHECKING:
    from streams.contract.catalog import Catalog

top_level = typer.Typer()


class CatalogFormat(StrEnum):
    ASYNCAPI = "asyncapi"
    MARKDOWN = "markdown"


ASYNCAPI_FILE = "asyncapi.yaml"
MARKDOWN_FILE = "catalog.md"


@top_level.command("catalog")
def catalog_command(
    fmt: Annotated[
        CatalogFormat,
        typer.Option("--format", help="asyncapi: an AsyncAPI 3.0 document and its Avro schemas; markdown: a page."),
    ] = CatalogFormat.ASYNCAPI,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Directory to write to (asyncapi.yaml with schemas/, or catalog.md). "
            "Default: stdout for markdown, ./catalog for asyncapi.",
        ),
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Topic name prefix (JOINTUSE_TOPIC_PREFIX).")] = None,
) -> None:
    """Write the topic catalog of the latest policy version: every topic `topics create` makes, who
    may write and read it, its key, schemas, headers and settings, each company's consumer-group
    prefix, and per delivery topic the purposes and items the recipient may receive.

    The AsyncAPI document references its Avro schemas as files under schemas/, next to it.

    Examples:
      jointuse catalog --format asyncapi --out build/catalog
      jointuse catalog --format markdown > catalog.md
      JOINTUSE_TOPIC_PREFIX=staging jointuse catalog --format markdown --out docs/

    Exit codes: 0 written; 2 an unreadable policy or schema, or an unwritable directory.
    """
    settings = load_settings(topic_prefix=prefix)
    try:
        catalog = build_from_settings(settings)
    except JointUseError as exc:
        fail(exc, Exit.USAGE)
    from streams.contract.render import SCHEMA_DIR, avro_for_asyncapi, to_asyncapi, to_markdown

    try:
        if fmt is CatalogFormat.MARKDOWN:
            text = to_markdown(catalog)
            if out is None:
                typer.echo(text, nl=False)
                return
            out.mkdir(parents=True, exist_ok=True)
            (out / MARKDOWN_FILE).write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out / MARKDOWN_FILE}", err=True)
            return
        directory = out or Path("catalog")
        (directory / SCHEMA_DIR).mkdir(parents=True, exist_ok=True)
        for name, schema in catalog.avro_schemas.items():
            (directory / SCHEMA_DIR / name).write_text(
                json.dumps(avro_for_asyncapi(schema), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        document = yaml.safe_dump(to_asyncapi(catalog), allow_unicode=True, sort_keys=False, width=120)
        (directory / ASYNCAPI_FILE).write_text(document, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write the catalog to {out}: {exc.strerror}", Exit.USAGE)
    typer.echo(
        f"wrote {directory / ASYNCAPI_FILE} and {len(catalog.avro_schemas)} schemas in {directory / SCHEMA_DIR}",
        err=True,
    )


def build_from_settings(settings: Settings) -> Catalog:
    from streams.contract.catalog import build_catalog
    from streams.policy.loader import load_policies
    from streams.serde.governed import GovernedSchemas
    from streams.stats.schema import load_stats_schema
    from streams.topology import Topology

    return build_catalog(
        load_policies(settings.policy_path),
        GovernedSchemas.load(settings.schema_dir),
        Topology(settings.topic_prefix),
        bootstrap_servers=settings.bootstrap_servers,
        registry_url=settings.schema_registry_url,
        stats_schema=load_stats_schema(settings.schema_dir),
    )
