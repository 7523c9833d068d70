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
