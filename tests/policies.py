"""Policy files for tests: the real notice with recipients added (the seed names none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import POLICY_PATH

REINSURER = "example-re-us"  # a reinsurer abroad (the notice's section 6)


def reinsurer_abroad(country: str = "US") -> dict[str, Any]:
    return {
        "id": REINSURER,
        "basis": "foreign",
        "name_ja": "例示米国再保険会社",
        "name_en": "Example Reinsurance Inc. (a test recipient, not in the seed)",
        "country": country,
        "purposes": ["insurer.reinsurance"],
        "items": ["name", "birth_date", "gender"],
        "insurer_fields": ["policy", "claims"],
        "contract": "TREATY-ABROAD-TEST",
        "consent_reference": "保険契約申込書 外国にある第三者への提供に関する同意欄",
    }


def policy_with_reinsurer(folder: Path, *, country: str = "US") -> Path:
    """The notice with one reinsurer abroad: a channel of the insurer's notice under the foreign basis."""
    return policy_with_channels(folder, reinsurer_abroad(country))


def policy_text_without_the_insurer() -> str:
    """The notice with the insurer removed: no longer a joint user, so neither the provider abroad
    nor the holder of its own notice's channels."""
    data = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    data["joint_users"] = [u for u in data["joint_users"] if u["id"] != "jcom-insurance"]
    del data["handling"]
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def policy_with_channels(folder: Path, *channels: dict[str, Any]) -> Path:
    """The notice with channels of the insurer's own notice (the seed names no recipient)."""
    data = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    data["handling"]["channels"] = list(channels)
    path = folder / "jcom-group.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
