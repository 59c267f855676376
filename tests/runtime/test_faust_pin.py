"""streams.app replaces faust's private ``Consumer._commit`` under exactly-once (our transactions
commit the offsets). That was checked against one faust version: a new one must be checked again."""

from __future__ import annotations

import inspect

import faust
from faust.transport.consumer import Consumer


def test_the_replaced_commit_method_is_the_one_checked() -> None:
    assert faust.__version__ == "0.15.3", "re-check streams.app._leave_offsets_to_transactions, then update the pin"
    assert list(inspect.signature(Consumer._commit).parameters) == ["self", "offsets"]
    assert inspect.iscoroutinefunction(Consumer._commit)
