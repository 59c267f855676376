"""Benchmarks (``make bench``). For now: the policy engine on the canonical record, against the
fastavro decode of the same record as a baseline measured in the same run (machines are noisy, so
ratios matter more than absolute figures)."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from collections.abc import Callable

from streams.policy.classification import load_schema
from streams.policy.engine import Engine
from streams.policy.loader import load_policies
from streams.serde.avro_codec import AvroCodec
from streams.serde.json_form import JsonForm
from streams.settings import PROJECT_ROOT
from streams.synthetic import Generator, Mix

RESULTS = PROJECT_ROOT / "bench" / "results.json"


def _rate(run: Callable[[], int], repetitions: int = 3) -> float:
    rates = []
    for _ in range(repetitions):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def bench_decide(count: int = 20_000) -> dict[str, float]:
    schema = load_schema(PROJECT_ROOT / "schemas" / "customer_record.v1.avsc")
    engine = Engine(schema, load_policies(PROJECT_ROOT / "policies"))
    form = JsonForm(schema)
    codec = AvroCodec(schema.raw)
    mix = Mix(secrecy=1.0, sensitive=1.0, insurer=1.0, marketing_opt_out=0.0, joint_use_stop=0.0, invalid=0.0)
    records = [form.to_native(r) for _, r in Generator(seed=1, mix=mix).records(1000) if isinstance(r, dict)]
    bodies = [codec.encode(r) for r in records]
    decoded = [codec.decode(b) for b in bodies]
    now = dt.datetime.now(dt.UTC)
    rounds = max(1, count // len(records))

    def decode() -> int:
        for _ in range(rounds):
            for body in bodies:
                codec.decode(body)
        return rounds * len(bodies)

    def decide(trusted: bool) -> Callable[[], int]:
        def run() -> int:
            for _ in range(rounds):
                for record in decoded:
                    engine.decide(record, record["source_company"], now=now, trusted=trusted)
            return rounds * len(decoded)

        return run

    baseline = _rate(decode)
    validated = _rate(decide(False))
    trusted = _rate(decide(True))
    return {
        "fastavro_decode_records_per_s": round(baseline),
        "decide_validated_records_per_s": round(validated),
        "decide_trusted_records_per_s": round(trusted),
        "decide_validated_over_decode": round(validated / baseline, 2),
        "decide_trusted_over_decode": round(trusted / baseline, 2),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="jointuse benchmarks; writes bench/results.json and docs/benchmarks.md"
    )
    parser.add_argument("--only", choices=["decide", "pipeline"], help="run one part only")
    parser.add_argument("--count", type=int, default=20_000, help="records in the pipeline backlog")
    args = parser.parse_args()
    results: dict[str, object] = {"measured_at": dt.datetime.now(dt.UTC).isoformat()}
    if args.only in (None, "decide"):
        results["decide"] = bench_decide()
    if args.only in (None, "pipeline"):
        from bench.pipeline import run as run_pipeline

        results["pipeline"] = run_pipeline(args.count)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['measured_at']} on this project's 2-core machine.",
        "Each throughput figure is the median of 3 repetitions (decide) or one backlog run (pipeline).",
        "",
    ]
    for section, values in results.items():
        if not isinstance(values, dict):
            continue
        lines += [f"## {section}", "", "| measure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in values.items()]
        lines.append("")
    (PROJECT_ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
