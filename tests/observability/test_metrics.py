from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.messages import InMessage, Outcome
from streams.observability.metrics import LATENCY_BUCKETS, BatchHistogram, PipelineMetrics, RightsMetrics
from streams.policy.decision import Status
from streams.rights.core.erasure import ErasureOutcome


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float | None:
    return registry.get_sample_value(name, labels or {})


def test_outcomes_become_counters_with_bounded_labels() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    message = InMessage("p.ingest.jcom.customer.v1", 0, 5, b"customer-123", b"v", 1_000)
    shared = Outcome(
        Status.SHARED,
        "shared",
        "jcom",
        (),
        {"jcom-insurance": ("jointuse.billing", "jointuse.support")},
        (("race", "sensitive"), ("customer-123-secret-key", "unknown")),
    )
    withheld = Outcome(Status.WITHHELD, "joint_use_stop", "jcom", (), {}, ())
    dead = Outcome(Status.INVALID, "leak_canary", "jcom", (), {}, (), leaks=(("jcom-insurance", "sensitive"),))
    metrics.observe([(message, shared), (message, withheld), (message, dead)], committed_at=3.0)

    assert _value(registry, "jointuse_records_in_total", {"source": "jcom"}) == 3
    assert _value(registry, "jointuse_deliveries_total", {"source": "jcom", "recipient": "jcom-insurance"}) == 1
    assert (
        _value(
            registry, "jointuse_delivery_purposes_total", {"recipient": "jcom-insurance", "purpose": "jointuse.billing"}
        )
        == 1
    )
    assert _value(registry, "jointuse_withheld_total", {"source": "jcom", "reason": "joint_use_stop"}) == 1
    assert _value(registry, "jointuse_dead_letters_total", {"source": "jcom", "reason": "leak_canary"}) == 1
    assert _value(registry, "jointuse_fields_dropped_total", {"class": "unknown", "path": "<unknown>"}) == 1
    assert _value(registry, "jointuse_leak_canary_total", {"recipient": "jcom-insurance", "class": "sensitive"}) == 1
    assert _value(registry, "jointuse_end_to_end_latency_seconds_count") == 3
    assert _value(registry, "jointuse_end_to_end_latency_seconds_sum") == 6.0
    text = generate_latest(registry).decode()
    assert "customer-123" not in text  # never a customer id or a key as a label


def test_alike_outcomes_of_a_batch_are_each_counted() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    message = InMessage("p.ingest.jcom.customer.v1", 0, 5, b"k", b"v", 1_000)
    shared = Outcome(Status.SHARED, "shared", "jcom", (), {"jcom-insurance": ("jointuse.billing",)}, (("a", "b"),))
    other = Outcome(Status.SHARED, "shared", "jcom", (), {"jcom": ("jointuse.billing",)}, ())
    metrics.observe([(message, shared), (message, other), (message, shared)], committed_at=3.0)
    metrics.observe([(message, shared)], committed_at=3.0)
    assert _value(registry, "jointuse_records_in_total", {"source": "jcom"}) == 4
    assert _value(registry, "jointuse_deliveries_total", {"source": "jcom", "recipient": "jcom-insurance"}) == 3
    assert _value(registry, "jointuse_deliveries_total", {"source": "jcom", "recipient": "jcom"}) == 1
    assert _value(registry, "jointuse_fields_dropped_total", {"class": "b", "path": "a"}) == 3
    assert _value(registry, "jointuse_end_to_end_latency_seconds_count") == 4


def test_leak_canary_series_exists_at_zero_before_any_record() -> None:
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    assert _value(registry, "jointuse_leak_canary_total", {"recipient": "none", "class": "none"}) == 0
    assert _value(registry, "jointuse_build_info", {"version": "0.1.0"}) == 1


def test_provisions_to_channels_and_what_they_did_not_receive_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    message = InMessage("p.ingest.jcom-insurance.customer.v1", 0, 5, b"k", b"v", 1_000)
    abroad = Outcome(
        Status.SHARED,
        "shared",
        "jcom-insurance",
        (),
        {},
        (),
        provisions=(("re-us", "foreign"), ("investigator", "entrustment")),
    )
    not_consented = Outcome(
        Status.SHARED,
        "shared",
        "jcom-insurance",
        (),
        {},
        (),
        provisions=(("investigator", "entrustment"),),
        provisions_withheld=(("re-us", "no_consent"),),
    )
    metrics.observe([(message, abroad), (message, not_consented), (message, not_consented)], committed_at=3.0)
    assert _value(registry, "jointuse_provisions_total", {"channel": "re-us", "basis": "foreign"}) == 1
    assert _value(registry, "jointuse_provisions_total", {"channel": "investigator", "basis": "entrustment"}) == 3
    assert _value(registry, "jointuse_provisions_withheld_total", {"channel": "re-us", "reason": "no_consent"}) == 2


def test_rights_metrics_count_outcomes() -> None:
    registry = CollectorRegistry()
    stopped = [3]
    rights = RightsMetrics(registry, lambda: stopped[0], lambda: 0)
    erase = ErasureOutcome(
        Status.SHARED, "erase", "jcom", (), ("p.deliver.jcom-insurance.customer.v1", "p.deliver.other.customer.v1")
    )
    rights.observe([erase, ErasureOutcome(Status.WITHHELD, "stop", "jcom", ())])
    assert registry.get_sample_value("jointuse_rights_requests_total", {"action": "erase"}) == 1
    assert registry.get_sample_value("jointuse_rights_requests_total", {"action": "stop"}) == 1
    assert registry.get_sample_value("jointuse_erasure_tombstones_total") == 2
    assert registry.get_sample_value("jointuse_rights_stopped_subjects") == 3


def test_forged_headers_are_counted_by_a_name_the_pipeline_chose_never_a_value() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    headers: list[tuple[str, str | bytes | None]] = [
        ("jointuse-purposes", b"secret-value"),
        ("jointuse-made-up-by-a-producer", b"x"),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),  # not forged
    ]
    message = InMessage("p.ingest.jcom.customer.v1", 0, 5, b"k", b"v", 1_000, headers)
    plain = InMessage("p.ingest.jcom.customer.v1", 0, 6, b"k", b"v", 1_000)
    shared = Outcome(Status.SHARED, "shared", "jcom", (), {}, ())
    metrics.observe([(message, shared), (message, shared), (plain, shared)], committed_at=3.0)
    assert _value(registry, "jointuse_forged_headers_total", {"source": "jcom", "header": "jointuse-purposes"}) == 2
    assert _value(registry, "jointuse_forged_headers_total", {"source": "jcom", "header": "jointuse-other"}) == 2
    text = generate_latest(registry).decode()
    assert "made-up" not in text and "secret-value" not in text


# Latencies as the worker sees them: anything from 0 up, bucket bounds themselves included.
_LATENCIES = st.lists(
    st.one_of(st.sampled_from([0.0, *LATENCY_BUCKETS]), st.floats(min_value=0, max_value=1e6)), max_size=300
)


@given(st.lists(_LATENCIES, max_size=4))
def test_a_batch_histogram_exposes_what_prometheus_clients_histogram_would(batches: list[list[float]]) -> None:
    """The dashboards' quantiles read the end-to-end latency's buckets: taken a batch at a time,
    they must be the buckets, count and sum that observing each value would give."""
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("latency_seconds", "d", buckets=LATENCY_BUCKETS, registry=one_by_one)
    histogram = BatchHistogram("latency_seconds", "d", buckets=LATENCY_BUCKETS, registry=batched)
    for batch in batches:
        for value in batch:
            reference.observe(value)
        histogram.observe_all(batch)
    expected = [line for line in generate_latest(one_by_one).decode().splitlines() if "_created" not in line]
    assert generate_latest(batched).decode().splitlines() == expected
