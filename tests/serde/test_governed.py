"""The governed version set is where every tool takes its schema: the latest by default, any governed
version by number or name, and a clear error naming the governed versions otherwise."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from streams.errors import SchemaError
from streams.serde.governed import GovernedSchemas, governed_version
from streams.settings import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "schemas"


def test_the_latest_is_the_default_and_any_version_can_be_named() -> None:
    governed = GovernedSchemas.load(SCHEMAS)
    assert governed.version() is governed.latest
    assert [v.number for v in governed.versions] == sorted(v.number for v in governed.versions)
    first = governed.versions[0]
    assert governed.version("1") is governed.version(1) is governed.version("v1") is first
    assert governed.version(first.name) is first
    assert first.path == SCHEMAS / f"{first.name}.avsc"
    assert governed_version(SCHEMAS).name == governed.latest.name


@pytest.mark.parametrize("wanted", ["0", "99", "v", "customer_record.v9", "../etc/passwd"])
def test_an_unknown_version_names_the_governed_ones(wanted: str) -> None:
    with pytest.raises(SchemaError, match=r"schema version: not a governed version \(governed: 1, 2\)"):
        GovernedSchemas.load(SCHEMAS).version(wanted)


def test_no_module_names_a_schema_file() -> None:
    """Tools take their schema from the governed set; `git grep` is what the issue asks anyone to run."""
    found = subprocess.run(
        ["git", "grep", "-n", "-e", r"customer_record\.v[0-9]*\.avsc", "--", "streams"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode not in (0, 1):  # not a git checkout: scan the files instead
        named = re.compile(r"customer_record\.v[0-9]*\.avsc")
        hits = [str(p) for p in (PROJECT_ROOT / "streams").rglob("*.py") if named.search(p.read_text(encoding="utf-8"))]
        assert hits == []
        return
    assert found.stdout == ""


def test_filter_decides_with_the_governed_version_given() -> None:
    line = b'{"customer_id": "C1"}\n'
    for version in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli.main", "filter", "--source", "jcom", "--schema-version", version],
            input=line,
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert b'"status":"invalid"' in done.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "filter", "--source", "jcom", "--schema-version", "7"],
        input=line,
        capture_output=True,
        check=False,
    )
    assert refused.returncode == 2 and b"not a governed version" in refused.stderr
