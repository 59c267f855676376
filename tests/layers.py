"""The package's layers, lowest first: what the purity and layer tests enforce, and what
docs/architecture.md draws. A module may import its own package and anything in a lower layer;
never a higher layer, and never a sibling of its own layer (siblings are independent features).

The core is the pure modules: the notice engine (``streams/policy/``) and the rules of each feature,
kept beside the feature's adapters. They import only the core: no Kafka, faust or Prometheus, no
I/O, no clock, no exit. Everything above them is a thin adapter.
"""

from __future__ import annotations

from pathlib import Path

import streams

PACKAGE = Path(streams.__file__).parent

# The pure modules, by path under streams/ ("policy/" is every module of the notice engine).
CORE = (
    "errors.py",
    "messages.py",
    "topology.py",
    "policy/",
    "audit/core/",
    "incidents/core/",
    "rights/core/",
    "stats/core/",
)

# Above the core, lowest first. A name is a package under streams/ or a top-level module.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("serde",),  # Avro, the registry's wire format, JSON Lines
    ("logs",),
    ("settings",),  # the one place client configurations are built
    ("kafka",),  # thin adapters over confluent-kafka: clients, admin, readers, ACLs
    ("processors",),  # one input in, the messages to write out: values only
    ("observability",),  # metrics of the processors' outcomes, health, the dashboard
    ("runtime",),  # the batch loop and its two transports (aiokafka under faust, confluent-kafka)
    ("audit", "quality", "incidents", "rights"),  # the features a worker composes
    ("worker",),  # one composition of a worker, whatever its transport
    ("app", "replay", "stats", "contract", "provision"),  # the faust entry point and the tools over a worker
    ("devtools",),  # demo, synthetic records, processes
    ("cli",),  # `jointuse`
)


def unit_of(module: str) -> str:
    """The package (or top-level module) a dotted ``streams.`` module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def is_core(module: str) -> bool:
    path = module.removeprefix("streams.").replace(".", "/")
    return any(path in (c.removesuffix(".py"), c.removesuffix("/")) or path.startswith(c) for c in CORE if c)


def layer_of(module: str) -> int:
    """0 for the core; otherwise 1 + the index of the module's unit in ``LAYERS``."""
    if is_core(module):
        return 0
    unit = unit_of(module)
    for index, units in enumerate(LAYERS, start=1):
        if unit in units:
            return index
    raise LookupError(f"{module}: its package {unit!r} is in no layer (tests/layers.py)")


def core_paths() -> list[Path]:
    found = []
    for entry in CORE:
        found += sorted((PACKAGE / entry).glob("*.py")) if entry.endswith("/") else [PACKAGE / entry]
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)
