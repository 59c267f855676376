"""Loading policy versions from YAML, with errors that name the file, the line and the problem."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streams.errors import PolicyError
from streams.policy.model import Policy


@dataclass(frozen=True)
class PolicySet:
    """Every published version of one notice, ordered by ``effective_from``."""

    versions: tuple[Policy, ...]

    def __post_init__(self) -> None:
        if not self.versions:
            raise PolicyError("no policy version given")
        ids = {p.notice.id for p in self.versions}
        if len(ids) != 1:
            raise PolicyError(f"policy versions belong to different notices: {sorted(ids)}")
        labels = [p.version for p in self.versions]
        if len(set(labels)) != len(labels):
            raise PolicyError("two policy files carry the same version")
        for earlier, later in zip(self.versions, self.versions[1:], strict=False):
            # Which version governs a record is decided by effective_from alone: two versions taking
            # effect at once would leave it to the order files are read in.
            if earlier.notice.effective_from == later.notice.effective_from:
                raise PolicyError(
                    f"versions {earlier.version!r} and {later.version!r} take effect at the same time (effective_from)"
                )
            # A version that replaces another is published after it: one published earlier but taking
            # effect later is out of order (a date typed wrong, or an old file put back).
            if later.notice.published_at < earlier.notice.published_at:
                raise PolicyError(
                    f"versions out of order: {later.version!r} takes effect after {earlier.version!r} "
                    "but was published before it (published_at)"
                )

    @classmethod
    def of(cls, policies: Iterable[Policy]) -> PolicySet:
        return cls(tuple(sorted(policies, key=lambda p: p.notice.effective_from)))

    @property
    def latest(self) -> Policy:
        return self.versions[-1]

    def in_force(self, at: dt.datetime | None) -> Policy | None:
        """The version in force at ``at`` (aware); the latest when ``at`` is None; None before the first."""
        if at is None:
            return self.latest
        taken = bisect.bisect_right(self._effective, at.timestamp())  # versions in effect by ``at``
        return self.versions[taken - 1] if taken else None

    @functools.cached_property
    def _effective(self) -> tuple[float, ...]:
        # POSIX seconds: aware datetimes in different zones compare through utcoffset() each time
        # (3.5x slower; called three times per record).
        return tuple(p.notice.effective_from.timestamp() for p in self.versions)

    def by_version(self, version: str) -> Policy:
        for policy in self.versions:
            if policy.version == version:
                return policy
        raise PolicyError(f"no policy version {version!r}; known: {[p.version for p in self.versions]}")


def load_policy(path: Path | str) -> Policy:
    """One policy version from a YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file ({exc.__class__.__name__})", source=str(path)) from exc
    return parse_policy(text, source=str(path))


def load_policies(path: Path | str) -> PolicySet:
    """A file (one version) or a directory of ``*.yaml`` files (every version of one notice)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        if not files:
            raise PolicyError("the directory holds no *.yaml policy file", source=str(path))
        return PolicySet.of(load_policy(f) for f in files)
    return PolicySet.of([load_policy(path)])


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise PolicyError(f"invalid YAML: {problem}", source=source, line=line) from exc
    if root is None:
        raise PolicyError("the policy file is empty", source=source)
    repeated = _repeated_key(root)
    if repeated is not None:  # YAML parsers keep the last of two equal keys: a file that says two things is refused
        key, line = repeated
        raise PolicyError(f"the key {key!r} is given twice in one mapping", source=source, line=line)
    data = yaml.SafeLoader(text).get_single_data()
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(part) for part in loc) or "<root>"
        raise PolicyError(f"{field}: {first['msg']}", source=source, line=_line_of(root, loc)) from exc


def _repeated_key(node: yaml.Node) -> tuple[str, int] | None:
    """The first key given twice in one mapping of the document, with the line of its second use."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        return str(key.value), int(key.start_mark.line) + 1
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return None


def _line_of(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node on the path ``loc``."""
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1
