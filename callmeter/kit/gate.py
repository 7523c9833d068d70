"""At most N of an expensive kind of request at once per process, with a short bounded queue.

A login or registration hashes a password (argon2: 64 MiB and a good fraction of a CPU
second each) and uses pooled database connections: it must not run for every request of a
flood at once — 300 concurrent logins would need 19 GiB, every pooled connection and all
the CPU. A :class:`Gate` runs ``slots`` at a time, lets at most ``queue`` more wait for at
most ``wait_seconds``, and refuses the rest at once with 503 ``busy`` (Retry-After): load
is shed, never queued without limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callmeter.errors import Busy

RETRY_AFTER_SECONDS = 1


class Gate:
    def __init__(self, *, slots: int, queue: int, wait_seconds: float) -> None:
        self.slots = slots
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._free = asyncio.Semaphore(slots)
        self._waiting = 0
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; raise Busy when the queue is full or the wait for
        a slot exceeds ``wait_seconds``."""
        if self._free.locked():
            if self._waiting >= self.queue:
                raise Busy(retry_after=RETRY_AFTER_SECONDS)
            self._waiting += 1
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self._free.acquire()
            except TimeoutError:
                raise Busy(retry_after=RETRY_AFTER_SECONDS) from None
            finally:
                self._waiting -= 1
        else:
            await self._free.acquire()
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._free.release()
