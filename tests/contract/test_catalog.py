"""The topic catalog: built from the policy, schemas and access plan; valid AsyncAPI by the reference
parser; exactly the topics `topics create` makes; the Markdown page in docs/ up to date."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from streams.cli.main import app
from streams.contract.catalog import Catalog, build_catalog
from streams.contract.render import avro_for_asyncapi, to_asyncapi, to_markdown
from streams.kafka.acl_plan import plan_access
from streams.policy.loader import PolicySet, load_policies
from streams.serde.avro_schema import parsing_canonical_form
from streams.serde.governed import GovernedSchemas
from streams.settings import PROJECT_ROOT
from streams.stats.schema import load_stats_schema
from tests.conftest import POLICY_PATH
from tests.policies import REINSURER, policy_with_channels, policy_with_reinsurer

VALIDATOR = PROJECT_ROOT / "infra" / "asyncapi" / "validate.mjs"
DOCS_CATALOG = PROJECT_ROOT / "docs" / "catalog.md"
GOVERNED = GovernedSchemas.load(PROJECT_ROOT / "schemas")
TOPOLOGY_PREFIX = "jointuse"


def catalog_of(policies: PolicySet, prefix: str = TOPOLOGY_PREFIX) -> Catalog:
    from streams.topology import Topology

    return build_catalog(
        policies,
        GOVERNED,
        Topology(prefix),
        bootstrap_servers="127.0.0.1:19092",
        registry_url="http://127.0.0.1:18081/apis/ccompat/v7",
        stats_schema=load_stats_schema(PROJECT_ROOT / "schemas"),
    )


def validate(directory: Path) -> dict:
    """The reference parser's verdict on ``directory``/asyncapi.yaml (installed by `make setup`)."""
    node = shutil.which("node")
    if node is None or not (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI parser is missing: run `make setup` (it runs npm ci in infra/asyncapi)")
    result = subprocess.run(
        [node, str(VALIDATOR), str(directory / "asyncapi.yaml")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode in (0, 1), result.stderr
    verdict = json.loads(result.stdout)
    assert (result.returncode == 0) == verdict["valid"]
    return verdict


def write_asyncapi(catalog: Catalog, directory: Path) -> dict:
    (directory / "schemas").mkdir(parents=True)
    for name, schema in catalog.avro_schemas.items():
        (directory / "schemas" / name).write_text(json.dumps(avro_for_asyncapi(schema)), encoding="utf-8")
    document = to_asyncapi(catalog)
    (directory / "asyncapi.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return document


@pytest.fixture(scope="module")
def with_reinsurer(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    return load_policies(policy_with_reinsurer(tmp_path_factory.mktemp("policy")))


@pytest.fixture(scope="module")
def with_channels(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    from tests.policy.test_handling import INVESTIGATOR
    from tests.policy.test_provide import ASSOCIATION, LAWYER
    from tests.policy.test_provide import REINSURER as DOMESTIC_REINSURER

    folder = tmp_path_factory.mktemp("channels")
    return load_policies(policy_with_channels(folder, INVESTIGATOR, DOMESTIC_REINSURER, ASSOCIATION, LAWYER))


@pytest.mark.parametrize("which", ["published", "with a foreign recipient", "with channels of the insurer's notice"])
def test_the_catalog_validates_and_lists_exactly_the_topics_created(
    which: str, policies: PolicySet, with_reinsurer: PolicySet, with_channels: PolicySet, tmp_path: Path
) -> None:
    from streams.topology import Topology

    chosen = {"published": policies, "with a foreign recipient": with_reinsurer}.get(which, with_channels)
    catalog = catalog_of(chosen)
    write_asyncapi(catalog, tmp_path)
    verdict = validate(tmp_path)
    errors = [d for d in verdict["diagnostics"] if d["severity"] == 0]
    assert verdict["valid"], errors[:5]
    created = {spec.name for spec in Topology(TOPOLOGY_PREFIX).specs(chosen.latest)}
    assert sorted(verdict["channels"]) == sorted(created)
    if which == "with a foreign recipient":
        assert Topology(TOPOLOGY_PREFIX).provide(REINSURER) in verdict["channels"]
        abroad = next(c for c in catalog.channels if c.address == Topology(TOPOLOGY_PREFIX).provide(REINSURER))
        assert abroad.readers == (REINSURER, "jointuse-retention") and "abroad" in abroad.summary
    if which == "with channels of the insurer's notice":
        topology = Topology(TOPOLOGY_PREFIX)
        provided = {c.address: c for c in catalog.channels if c.kind == "provide"}
        assert set(provided) == {topology.provide(c) for c in ("claims-investigator", "domestic-re", "ssi-association")}
        claim_file = provided[topology.provide("claims-investigator")]
        assert claim_file.readers == ("claims-investigator", "jointuse-retention")  # the retention job reads
        assert "entrustment" in claim_file.summary
        assert topology.supervision in verdict["channels"]


def test_the_parser_rejects_a_broken_catalog(policies: PolicySet, tmp_path: Path) -> None:
    """The validation can fail: an Avro schema the parser cannot read, a channel without an address."""
    catalog = catalog_of(policies)
    document = write_asyncapi(catalog, tmp_path)
    record = next(iter(catalog.avro_schemas))
    (tmp_path / "schemas" / record).write_text(json.dumps({"type": "record", "name": "x.y", "fields": 3}))
    assert not validate(tmp_path)["valid"]
    (tmp_path / "schemas" / record).write_text(json.dumps(avro_for_asyncapi(catalog.avro_schemas[record])))
    assert validate(tmp_path)["valid"]
    document["channels"]["audit"]["address"] = 7
    (tmp_path / "asyncapi.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert not validate(tmp_path)["valid"]


def test_written_schemas_are_the_ones_on_the_wire(policies: PolicySet) -> None:
    """Splitting full names for AsyncAPI changes no schema: same Parsing Canonical Form."""
    catalog = catalog_of(policies)
    for version in GOVERNED.versions:
        for name, raw in (
            (f"{version.name}.avsc", version.classified.raw),
            (f"{version.name}.delivery.avsc", version.delivery_raw),
        ):
            written = avro_for_asyncapi(catalog.avro_schemas[name])
            assert parsing_canonical_form(written) == parsing_canonical_form(raw), name


def test_readers_and_writers_are_the_acls(with_reinsurer: PolicySet) -> None:
    """A company reads only its own topics and writes only its own ingest topic; the catalog says
    what the ACLs allow, principal for principal."""
    from streams.topology import Topology

    catalog = catalog_of(with_reinsurer)
    policy = with_reinsurer.latest
    companies = {u.id for u in policy.joint_users} | set(policy.channels_by_id)
    acls = plan_access(policy, Topology(TOPOLOGY_PREFIX)).acls
    recipients = {f"{TOPOLOGY_PREFIX}.stats.{t.id}.v1": set(t.recipients) for t in policy.statistics.tables}
    assert recipients, "the published policy declares statistics tables"
    for channel in catalog.channels:
        if channel.kind == "stats":  # statistics, not personal data: read by the joint users the table names
            assert set(channel.readers) & companies == recipients.pop(channel.address), channel.address
        else:
            assert set(channel.readers) & companies <= {channel.company}, channel.address
        assert set(channel.writers) & companies <= ({channel.company} if channel.kind == "ingest" else set())
        for operation, principals in (("read", channel.readers), ("write", channel.writers)):
            allowed = {
                a.principal.removeprefix("User:")
                for a in acls
                if a.operation == operation and a.covers("topic", channel.address)
            }
            assert set(principals) == allowed, (channel.address, operation)
    assert catalog.group_prefixes["jcom"] == "jointuse.jcom."
    assert not recipients, "a statistics table has no channel"


def test_a_delivery_names_only_what_the_notice_lets_its_recipient_receive(policies: PolicySet) -> None:
    catalog = catalog_of(policies)
    policy = policies.latest
    deliveries = [c for c in catalog.channels if c.kind == "delivery"]
    assert {c.company for c in deliveries} == {u.id for u in policy.joint_users}
    for channel in deliveries:
        recipient = channel.company or ""
        assert channel.grants, recipient
        for grant in channel.grants:
            assert grant.source != recipient
            assert set(grant.purposes) <= policy.declared_purposes(recipient)
            assert set(grant.items) <= policy.item_ids
            for item in grant.items:
                assert policy.purposes_of_item[item] & set(grant.purposes), item
        document = to_asyncapi(catalog)["channels"][channel.id]["x-jointuse"]
        assert document["noticeVersion"] == policy.version
        assert document["grants"][0]["items"] == list(channel.grants[0].items)


def test_the_cli_writes_a_valid_document_and_a_page(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["catalog", "--format", "asyncapi", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert validate(tmp_path)["valid"]
    page = runner.invoke(app, ["catalog", "--format", "markdown"])
    assert page.exit_code == 0
    assert "## What each recipient receives" in page.stdout


def test_the_page_in_docs_is_up_to_date() -> None:
    """docs/catalog.md is what `jointuse catalog --format markdown --out docs` writes for the defaults."""
    expected = to_markdown(catalog_of(load_policies(POLICY_PATH)))
    assert DOCS_CATALOG.read_text(encoding="utf-8") == expected, (
        "docs/catalog.md is out of date: run `.venv/bin/jointuse catalog --format markdown --out docs`"
    )
