"""Policy files for tests: the real notice with a foreign recipient added (the seed names none)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import POLICY_PATH

REINSURER = "example-re-us"
REINSURER_ENTRY = f"""
    - id: {REINSURER}
      name: Example Reinsurance Inc. (a test recipient, not in the seed)
      country: US
      items: [name, birth_date, gender]
      insurer_fields: [policy, claims]"""


def policy_with_reinsurer(folder: Path, *, country: str = "US") -> Path:
    text = POLICY_PATH.read_text(encoding="utf-8")
    assert "  recipients: []" in text
    text = text.replace(
        "  recipients: []", "  recipients:" + REINSURER_ENTRY.replace("country: US", f"country: {country}")
    )
    path = folder / "jcom-group.yaml"
    path.write_text(text, encoding="utf-8")
    return path
