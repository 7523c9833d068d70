"""A password hasher that counts its verifications and can hold them (and hashes) until
released: the throttle is proven by what the hasher saw, not by what the database says."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from argon2 import PasswordHasher, profiles


class CountingHasher(PasswordHasher):
    @classmethod
    def cheapest(cls) -> CountingHasher:
        hasher = cls.from_parameters(profiles.CHEAPEST)
        assert isinstance(hasher, CountingHasher)
        return hasher

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verifications = 0
        self.inside = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._entered: asyncio.Queue[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self) -> None:
        """From now on every hash and verification waits for :meth:`release`."""
        self._loop = asyncio.get_running_loop()
        self._entered = asyncio.Queue()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def entered(self, count: int) -> None:
        """Wait until ``count`` more operations have started (they are being held)."""
        assert self._entered is not None
        for _ in range(count):
            await asyncio.wait_for(self._entered.get(), timeout=30)

    def _run(self, operation: Any, *args: Any) -> Any:
        with self._lock:
            self.inside += 1
        try:
            if self._loop is not None and self._entered is not None:
                self._loop.call_soon_threadsafe(self._entered.put_nowait, None)
            # A bound, so that a failing test cannot leave a thread behind for ever.
            assert self._released.wait(timeout=60)
            return operation(*args)
        finally:
            with self._lock:
                self.inside -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.verifications += 1
        result = self._run(super().verify, hash, password)
        assert isinstance(result, bool)
        return result

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        result = self._run(lambda: super(CountingHasher, self).hash(password, salt=salt))
        assert isinstance(result, str)
        return result
