"""Policy files for tests: the real notice with a foreign recipient added (the seed names none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def policy_text_without_the_insurer() -> str:
    """The notice with the insurer removed: no longer a joint user, so neither the provider abroad
    nor the holder of its own notice's channels."""
    data = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    data["joint_users"] = [u for u in data["joint_users"] if u["id"] != "jcom-insurance"]
    del data["foreign_provision"]["provider"], data["handling"]
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def policy_with_channels(folder: Path, *channels: dict[str, Any]) -> Path:
    """The notice with channels of the insurer's own notice (the seed names no recipient)."""
    data = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    data["handling"]["channels"] = list(channels)
    path = folder / "jcom-group.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
