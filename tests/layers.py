"""The layers of ``streams/``, read from its folders: what the purity and layer tests enforce.

Folders are the layers. A module belongs to its folder: the package directly under ``streams/``
(a module directly in ``streams/`` is its own). A folder named ``core``, inside a feature's package,
holds that feature's pure rules and is in the core, whatever its package's layer
(``streams/stats/core/`` beside the statistics worker in ``streams/stats/``). Every other folder
sits in one row of the layer diagram in docs/architecture.md (``## Layers``), highest first, which
is the one place their order is written; the row under the rule is the rest of the core: the notice
engine (``policy``), the pipeline's values and topic names, errors.

A module may import its own folder, the core, or a lower row: never a higher one, and never a
sibling in its own row (siblings are independent features). The core imports only the core and is
pure: no Kafka, faust or Prometheus, no I/O, no clock, no exit (tests/test_purity.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import streams
from streams.settings import PROJECT_ROOT

PACKAGE = Path(streams.__file__).parent
DIAGRAM = PROJECT_ROOT / "docs" / "architecture.md"
CORE_FOLDER = "core"  # inside a feature's package: its pure rules


def diagram_rows(text: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The rows of the layer diagram in ``text`` (highest first) above the rule and under it: each
    row's folder names, from its first column (the second says what they are)."""
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    above: list[tuple[str, ...]] = []
    under: list[tuple[str, ...]] = []
    rows = above
    for line in block.splitlines():
        if line.strip().startswith("─"):
            rows = under
            continue
        first = re.split(r"\s{2,}", line.strip())[0]
        names = tuple(name.strip() for name in first.split("·"))
        if all(re.fullmatch(r"[a-z_]+", name) for name in names):
            rows.append(names)
    return above, under


_ABOVE, _UNDER = diagram_rows(DIAGRAM.read_text(encoding="utf-8"))
# Above the core, lowest first; and the folders of the core other than the features' ``core/``.
LAYERS: tuple[tuple[str, ...], ...] = tuple(reversed(_ABOVE))
CORE_UNITS: frozenset[str] = frozenset(name for row in _UNDER for name in row)


def unit_of(module: str) -> str:
    """The folder (a package directly under ``streams/``, or a module directly there) a dotted
    ``streams.`` module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def is_core(module: str) -> bool:
    return unit_of(module) in CORE_UNITS or CORE_FOLDER in module.split(".")[2:]


def layer_of(module: str) -> int:
    """0 for the core; otherwise 1 + the index of the module's row in ``LAYERS``."""
    if is_core(module):
        return 0
    unit = unit_of(module)
    for index, units in enumerate(LAYERS, start=1):
        if unit in units:
            return index
    raise LookupError(f"{module}: its folder {unit!r} is in no row of the layer diagram (docs/architecture.md)")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def core_paths() -> list[Path]:
    """Every module of the core."""
    return [path for path in sorted(PACKAGE.rglob("*.py")) if is_core(module_name(path))]


def core_folders() -> list[str]:
    """The features' ``core/`` folders, as paths under ``streams/``."""
    return sorted(str(p.parent.relative_to(PACKAGE)) for p in PACKAGE.glob(f"*/{CORE_FOLDER}/__init__.py"))
