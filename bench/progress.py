"""Progress lines for `make bench`: each stage says when it starts and how long it took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_STARTED = time.monotonic()


@contextmanager
def stage(name: str) -> Iterator[None]:
    began = time.monotonic()
    print(f"[bench {began - _STARTED:5.0f} s] {name} ...", flush=True)
    yield
    print(f"[bench {time.monotonic() - _STARTED:5.0f} s] {name}: done in {time.monotonic() - began:.0f} s", flush=True)
