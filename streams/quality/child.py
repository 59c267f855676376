"""The worker's data-quality process: ``python -m streams.quality.child --schema S --suites D``.

Reads one JSON line per sampled batch on stdin (``{"ingest": [records], "delivery": [rows]}``, JSON
form), validates it with Great Expectations and writes one JSON line of results on stdout. It is a
separate process so that Great Expectations' CPU and memory never touch the worker's hot path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.policy.classification import load_schema
from streams.quality.frames import delivery_frame, ingest_frame
from streams.quality.suites_store import load_suites
from streams.quality.validate import validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("--suites", type=Path, required=True)
    args = parser.parse_args(argv)
    columns = [f.name for f in load_schema(args.schema).fields]
    suites = load_suites(args.suites)
    for line in sys.stdin:
        try:
            batch = json.loads(line)
            results: list[dict[str, Any]] = []
            if batch.get("ingest"):
                results.append(validate(ingest_frame(batch["ingest"], columns), suites["ingest"]).to_dict())
            if batch.get("delivery"):
                results.append(validate(delivery_frame(batch["delivery"], columns), suites["delivery"]).to_dict())
            out: dict[str, Any] = {"results": results}
        except Exception as exc:  # one bad batch must not end the process; the parent counts it
            out = {"error": type(exc).__name__}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
