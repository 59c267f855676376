"""What a worker does to the garbage collector before its loop starts."""

from __future__ import annotations

import gc

from streams.worker.parts import YOUNG_COLLECTION_AFTER, settle_heap


def test_a_worker_freezes_what_it_built_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        built = [{"schema": n} for n in range(100)]  # what a worker builds before its loop
        settle_heap()
        assert gc.get_freeze_count() >= len(built)
        assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, 20, 100)
        assert gc.isenabled()  # cycles are still freed
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
