"""In-process slots (open event streams): every limit holds, a release frees each key once."""

from __future__ import annotations

from callmeter.kit.slots import Slots


class TestSlots:
    def test_every_key_holds_its_limit_and_a_release_frees_each_key_once(self) -> None:
        slots = Slots()
        limits = {"user": 3, ("user", "call"): 2}
        first = slots.try_acquire(limits)
        assert first is not None
        assert slots.try_acquire(limits) is not None
        assert slots.try_acquire(limits) is None  # the per-call key is full
        assert slots.try_acquire({"user": 3, ("user", "other"): 2}) is not None
        assert slots.try_acquire({"user": 3, ("user", "third"): 2}) is None  # user is full
        first.release()
        first.release()  # idempotent: frees nothing twice
        assert (slots.held("user"), slots.held(("user", "call"))) == (2, 1)
        assert slots.try_acquire(limits) is not None
        assert slots.try_acquire(limits) is None


def test_recent_events_admit_the_limit_per_window_and_say_when_one_leaves() -> None:
    from callmeter.kit.slots import RecentEvents

    recent = RecentEvents(max_keys=2)
    assert [recent.admit("a", 100.0 + i, 3, 10) for i in range(3)] == [None, None, None]
    assert recent.admit("a", 105.0, 3, 10) == 5.0  # the first leaves the window at 110 s
    assert recent.admit("b", 105.0, 3, 10) is None  # other keys count apart
    assert recent.admit("a", 110.0, 3, 10) is None
    for key in ("c", "d", "e"):  # more keys than kept: the expired ones are forgotten
        recent.admit(key, 200.0, 3, 10)
    assert recent.admit("a", 200.0, 1, 10) is None
