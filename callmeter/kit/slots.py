"""Counted slots held by long-lived work (open event streams), per key, in this process."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping


class Slot:
    """One slot under each of some keys; :meth:`release` is idempotent."""

    def __init__(self, owner: Slots, keys: tuple[Hashable, ...]) -> None:
        self._owner = owner
        self._keys = keys
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner._release(self._keys)


class Slots:
    """How many slots each key holds. The event loop is single-threaded, so taking a slot
    (check every limit, then count) cannot race within the process; other processes
    keep their own counts."""

    def __init__(self) -> None:
        self._held: Counter[Hashable] = Counter()

    def held(self, key: Hashable) -> int:
        return self._held[key]

    def try_acquire(self, limits: Mapping[Hashable, int]) -> Slot | None:
        """A slot under every key of ``limits``, or None when a key already holds its limit."""
        if any(self._held[key] >= limit for key, limit in limits.items()):
            return None
        for key in limits:
            self._held[key] += 1
        return Slot(self, tuple(limits))

    def _release(self, keys: tuple[Hashable, ...]) -> None:
        for key in keys:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
