"""The worker's data-quality process: ``python -m streams.quality.child --schema S --suites D``.

Reads one JSON line per sampled batch on stdin (``{"ingest": [records], "delivery": [rows]}``, JSON
form), validates it with Great Expectations and writes one JSON line of results on stdout. It is a
separate process so that Great Expectations' CPU and memory never touch the worker's hot path, and
for the same reason it runs at a lower priority (nice 19, the lowest: on a machine the worker and its broker
share, a sampled batch waits for their idle time) and makes its validators before the first batch
(Great Expectations' import alone is 1.6 s of CPU, once taken in the middle of the traffic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from streams.policy.classification import load_schema
from streams.quality.frames import delivery_frame, ingest_frame
from streams.quality.suites_store import load_suites
from streams.quality.validate import SuiteValidator

NICENESS = 19
# A validator's context keeps a little of every run (about 16 KB): it is made anew this often.
RUNS_PER_VALIDATOR = 100


class _Validators:
    """Each suite's validator, made once and anew every ``RUNS_PER_VALIDATOR`` runs."""

    def __init__(self, suites: dict[str, dict[str, Any]]) -> None:
        self.suites = suites
        self._made = {name: SuiteValidator(suite) for name, suite in suites.items()}
        self._runs = dict.fromkeys(suites, 0)

    def __getitem__(self, name: str) -> SuiteValidator:
        self._runs[name] += 1
        if self._runs[name] > RUNS_PER_VALIDATOR:
            self._made[name], self._runs[name] = SuiteValidator(self.suites[name]), 1
        return self._made[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("--suites", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        os.nice(NICENESS)
    except OSError:  # not allowed here: the same work at the same priority
        pass
    columns = [f.name for f in load_schema(args.schema).fields]
    validators = _Validators(load_suites(args.suites))
    for line in sys.stdin:
        try:
            batch = json.loads(line)
            results: list[dict[str, Any]] = []
            if batch.get("ingest"):
                results.append(validators["ingest"].run(ingest_frame(batch["ingest"], columns)).to_dict())
            if batch.get("delivery"):
                results.append(validators["delivery"].run(delivery_frame(batch["delivery"], columns)).to_dict())
            out: dict[str, Any] = {"results": results}
        except Exception as exc:  # one bad batch must not end the process; the parent counts it
            out = {"error": type(exc).__name__}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
