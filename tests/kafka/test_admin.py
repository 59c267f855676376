"""How many copies the project's topics get, and with how many in sync, by the cluster's size."""

from __future__ import annotations

from streams.kafka.admin import intended_replication, replicated_config


def test_three_copies_or_one_per_broker() -> None:
    assert [intended_replication(n) for n in (0, 1, 2, 3, 5)] == [1, 1, 2, 3, 3]


def test_two_in_sync_where_a_topic_has_three_copies_and_its_own_setting_stays() -> None:
    assert replicated_config({"cleanup.policy": "compact"}, 3) == {
        "min.insync.replicas": "2",
        "cleanup.policy": "compact",
    }
    assert replicated_config({"min.insync.replicas": "3"}, 5) == {"min.insync.replicas": "3"}
    assert replicated_config({}, 2) == {} and replicated_config({}, 1) == {}
    assert replicated_config({}, -1) == {}  # the broker's default replication: its own min.insync.replicas
