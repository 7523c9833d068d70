"""Counted slots held by long-lived work (open event streams) and recent events (signals),
per key, in this process."""

from __future__ import annotations

from collections import Counter, deque
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


class RecentEvents:
    """How many events each key admitted within a sliding window, in this process: a cheap
    first gate in front of a limit that the database enforces across processes, so that a
    flood is refused before it queues for a connection or a row lock."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._times: dict[Hashable, deque[float]] = {}
        self._max_keys = max_keys

    def admit(self, key: Hashable, now: float, limit: int, window: float) -> float | None:
        """Count one event for ``key`` at ``now`` (seconds) if fewer than ``limit`` were
        admitted in the last ``window`` seconds; otherwise the seconds until one leaves."""
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limit:
            return times[0] + window - now
        times.append(now)
        if len(self._times) > self._max_keys:
            self._forget_before(now - window)
        return None

    def _forget_before(self, moment: float) -> None:
        for key in [k for k, times in self._times.items() if not times or times[-1] <= moment]:
            del self._times[key]
