"""Property and fuzz tests of the real processor, in process.

- Over generated schemas (records, arrays, maps, unions of records and maps, named types reused across
  namespaces, random classes): no value of a field whose governed class is not shareable reaches a
  delivery, and the independent leak canary agrees.
- Over the governed schemas with extreme values: nothing raises, and every input gets one audit event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.messages import InMessage, Run
from streams.policy.canary import LeakCanary
from streams.policy.decision import Delivery
from streams.policy.loader import PolicySet
from streams.policy.pseudonym import SubjectKeys
from streams.processors.ingest import Deciding, Processor
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas, GovernedVersion
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT
from streams.topology import Topology
from tests.avro_strategies import MARK, values
from tests.avro_strategies import schemas as generated_schemas
from tests.memory_registry import MemoryRegistry

T = Topology("g")
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
KEYS = SubjectKeys(b"property-test-subject-key")
GOVERNED = GovernedSchemas.load(PROJECT_ROOT / "schemas")


def _process(processor: Processor, registry: MemoryRegistry, raw: dict[str, Any], record: Any, offset: int = 0) -> Any:
    schema_id = registry.register(f"{T.ingest('jcom')}-value", raw)
    value = frame(schema_id, AvroCodec(raw).encode(record))
    return processor.process(InMessage(T.ingest("jcom"), 0, offset, b"C1", value, 0))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_schemas_never_deliver_what_their_classes_protect(policies: PolicySet, data: Any) -> None:
    raw = data.draw(generated_schemas())
    version = GovernedVersion.build("generated.v1", raw)  # classified, delivery schema and codecs built
    record = data.draw(values(version.classified.root, marked=False))
    record.update(customer_id="C1", source_company="jcom")
    registry = MemoryRegistry()
    processor = Processor(Run(T, KEYS), Deciding(policies), GovernedSchemas([version]), registry, now=lambda: NOW)
    outcome = _process(processor, registry, raw, record)
    assert outcome.reason in ("shared", "no_recipient"), outcome.reason  # decided: no canary, no failure
    for message in outcome.messages:
        assert MARK.encode() not in (message.value or b""), message.topic
    # The canary, given the whole record as if it were delivered, finds the protected values.
    if MARK in repr(record):
        canary = LeakCanary(version.classified, policies)
        everything = Delivery("jcom-insurance", (), tuple(policies.latest.item_ids), record)
        assert canary.inspect(everything, source="jcom", policy_version=policies.latest.version)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_extreme_values_in_governed_schemas_never_raise(policies: PolicySet, data: Any) -> None:
    version = data.draw(st.sampled_from(GOVERNED.versions))
    record = data.draw(values(version.classified.root, marked=False, extreme=True))
    record["customer_id"] = "C1"
    record["source_company"] = data.draw(st.sampled_from(["jcom", "jcom-insurance", "outsider"]))
    registry = MemoryRegistry()
    processor = Processor(Run(T, KEYS), Deciding(policies), GOVERNED, registry, now=lambda: NOW)
    outcome = _process(processor, registry, dict(version.classified.raw), record)
    audits = [m for m in outcome.messages if m.topic == T.audit]
    assert len(audits) == 1
    assert outcome.reason != "unprocessable", "an extreme value is a decision or a violation, never a crash"
