"""``jointuse filter`` with garbage: exactly one output line per input line, in order, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.records import make_json_records


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *args], input=stdin, capture_output=True, timeout=120, check=False
    )


def test_filter_handles_garbage_line_by_line() -> None:
    good = make_json_records(3, seed=5)
    jcom = [r for r in good if r["source_company"] == "jcom"]
    lines = [
        json.dumps(jcom[0], ensure_ascii=False).encode(),
        b"",
        b"{not json",
        b"\xff\xfe\xfa invalid utf-8",
        b"[1, 2, 3]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"customer_id": "x", "source_company": "jcom", "name": 5, "payment_status": {"status": "paid"}}',
        b'{"customer_id": "big", "padding": "' + b"a" * 10_000_000 + b'"}',
        b"   ",
        json.dumps({**jcom[0], "source_company": "jcom-insurance"}).encode(),
        json.dumps({**jcom[0], "birth_date": "SECRET-not-a-date"}).encode(),
    ]
    result = run_cli("filter", "--source", "jcom", stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o["line"] for o in out] == list(range(1, len(lines) + 1))
    statuses = [o["status"] for o in out]
    assert statuses[0] == "shared"
    assert statuses[1:] == ["invalid"] * (len(lines) - 1)
    reasons = [o["reason"].split(":")[0] for o in out[1:]]
    assert reasons == [
        "empty_line",
        "not_json",
        "not_utf8",
        "not_an_object",
        "nested_too_deep",
        "schema_violation",
        "schema_violation",
        "empty_line",
        "source_mismatch",
        "schema_violation",
    ]
    assert "wrong_type at name" in out[6]["reason"]
    assert "missing_required" in out[7]["reason"] and out[7]["key"] == "big"
    assert "bad_date at birth_date" in out[10]["reason"]
    assert "SECRET" not in result.stdout.decode()
    assert set(out[0]["deliveries"]) == {"jcom-insurance"}
    assert out[0]["policy_version"] == "2026-01"


def test_filter_bad_policy_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("notice:\n  id: Not Valid\n", encoding="utf-8")
    result = run_cli("filter", "--source", "jcom", "--policy", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_filter_missing_argument_exits_2() -> None:
    assert run_cli("filter").returncode == 2


def test_policy_check_and_schema_check_pass_on_the_repository() -> None:
    check = run_cli("policy", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    schema = run_cli("schema", "check")
    assert schema.returncode == 0 and b"customer_record.v1.avsc, customer_record.v2.avsc" in schema.stdout


def test_schema_check_fails_on_an_incompatible_version(tmp_path: Path) -> None:
    from streams.settings import PROJECT_ROOT

    v1 = json.loads((PROJECT_ROOT / "schemas" / "customer_record.v1.avsc").read_text(encoding="utf-8"))
    (tmp_path / "customer_record.v1.avsc").write_text(json.dumps(v1), encoding="utf-8")
    v2 = dict(v1)
    v2["fields"] = [
        *v1["fields"],
        {"name": "loyalty_rank", "type": "string", "jointuse.class": "item", "jointuse.item": "contract_information"},
    ]  # no default: not backward compatible
    (tmp_path / "customer_record.v2.avsc").write_text(json.dumps(v2), encoding="utf-8")
    result = run_cli("schema", "check", "--schemas", str(tmp_path))
    assert result.returncode == 1
    assert b"customer_record.v2.avsc cannot read customer_record.v1.avsc" in result.stdout


def test_policy_diff_exit_code_follows_consent(tmp_path: Path) -> None:
    from tests.conftest import POLICY_PATH

    text = POLICY_PATH.read_text(encoding="utf-8")
    new = tmp_path / "new.yaml"
    new.write_text(
        text.replace('version: "2026-01"', 'version: "2026-09"')
        .replace("published_at: 2026-01-01", "published_at: 2026-08-01")
        .replace("effective_from: 2026-01-01T00:00:00+09:00", "effective_from: 2026-09-01T00:00:00+09:00")
        .replace("joint_users:\n", "joint_users:\n  - {id: jcom-east, name_ja: 東株式会社}\n"),
        encoding="utf-8",
    )
    result = run_cli("policy", "diff", str(POLICY_PATH), str(new))
    assert result.returncode == 1
    assert b"joint_users[jcom-east]: added [consent]" in result.stdout


def test_filter_writes_one_line_per_input_whatever_the_input() -> None:
    """The inputs that once stopped `filter` (exit 1, every later line lost), then a good line."""
    from tests.records import make_json_records

    good = next(r for r in make_json_records(4, seed=2) if r["source_company"] == "jcom")
    far = dict(good, updated_at="9999-12-31T23:59:59-14:00")
    surrogate = json.dumps(good).replace(json.dumps(good["name"]), '"\\ud800"')
    duplicate = json.dumps(good)[:-1] + ', "consent": {"joint_use_stop": false}}'
    lines = [json.dumps(far), surrogate, duplicate, json.dumps(good)]
    result = run_cli("filter", "--source", "jcom", stdin="\n".join(lines).encode() + b"\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3, 4]
    assert out[0]["reason"].startswith("schema_violation: out_of_range at updated_at")
    assert out[1]["reason"].startswith("lone_surrogate")
    assert out[2]["reason"].startswith("duplicate_key")
    assert out[3]["status"] == "shared"
