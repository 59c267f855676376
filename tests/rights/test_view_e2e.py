"""The rights view's lag: requests on the rights topic it has not applied yet."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from streams.kafka.follow import _lag
from streams.kafka.reader import reader
from streams.rights.core.rules import RightsAction
from streams.rights.view import RightsView
from streams.settings import Settings
from tests.runtime.helpers import setup_topics

pytestmark = pytest.mark.kafka


def test_the_view_counts_what_it_has_not_applied(kafka: Settings, unique: str) -> None:
    from streams.rights.requests import file_requests

    settings = kafka.model_copy(update={"topic_prefix": f"rv{unique}"})
    topology = setup_topics(settings, partitions=2)
    file_requests(settings, RightsAction.STOP, [(f"C{n}", "jcom") for n in range(5)])

    consumer = reader(settings.kafka_common(), group_id=f"{settings.topic_prefix}.pipeline.lagcheck")
    consumer.assign([TopicPartition(topology.rights, p, OFFSET_BEGINNING) for p in (0, 1)])
    assert _lag(consumer) == 5  # nothing read yet
    read = 0
    deadline = time.monotonic() + 30
    while read < 5 and time.monotonic() < deadline:
        read += sum(m.error() is None for m in consumer.consume(10, 0.5))
    assert read == 5 and _lag(consumer) == 0
    consumer.close()

    view = RightsView(settings.kafka_common(), topology.rights, group_id=f"{settings.topic_prefix}.pipeline.rv")
    view.start()
    try:
        assert len(view.state) == 5
        deadline = time.monotonic() + 15
        while view.lag != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert view.lag == 0
    finally:
        view.stop()
