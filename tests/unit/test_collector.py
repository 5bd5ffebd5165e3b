"""CollectorFreeze: at most one freeze per interval, and a real freeze takes objects out of the
collector's generations."""

from __future__ import annotations

import gc
import weakref

from itchflow.pipeline.collector import CollectorFreeze


def test_it_freezes_at_the_first_tick_then_once_per_interval() -> None:
    now = [100.0]
    calls: list[float] = []
    freezer = CollectorFreeze(1.0, clock=lambda: now[0], freeze=lambda: calls.append(now[0]))
    ticks = []
    for step in (0.0, 0.4, 0.5, 0.99, 1.0, 1.7, 2.0, 5.0):
        now[0] = 100.0 + step
        ticks.append(freezer.tick())
    assert ticks == [True, False, False, False, True, False, True, True]
    assert calls == [100.0, 101.0, 102.0, 105.0] and freezer.freezes == 4


def test_a_real_freeze_moves_live_objects_to_the_permanent_generation() -> None:
    before = gc.get_freeze_count()
    kept = [[index] for index in range(10_000)]  # tracked containers, alive
    try:
        assert CollectorFreeze(60.0).tick()
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()
    assert kept[-1] == [9_999]  # frozen objects stay what they were


def test_release_lets_the_collector_free_cycles_that_died_while_frozen() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the cyclic collector frees it

    gc.collect()
    freezer = CollectorFreeze(60.0)
    try:
        node = Node()
        alive = weakref.ref(node)
        assert freezer.tick()
        del node  # garbage now, but frozen: collections ignore it
        gc.collect()
        assert alive() is not None
        freezer.release()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert alive() is None
    finally:
        gc.unfreeze()


def test_after_release_the_next_tick_freezes_again() -> None:
    calls: list[str] = []
    freezer = CollectorFreeze(
        60.0,
        clock=lambda: 5.0,
        freeze=lambda: calls.append("freeze"),
        unfreeze=lambda: calls.append("unfreeze"),
    )
    assert freezer.tick() and not freezer.tick()
    freezer.release()
    assert freezer.tick()
    assert calls == ["freeze", "unfreeze", "freeze"]
