"""Drive calls over HTTP with an injected clock: no sleeping, every moment chosen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response

from callmeter.auth.tokens import issue_access_token
from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.meter.service import TickResult, tick
from callmeter.models import Role, User
from tests.factories import assert_ledger_ok, make_user, wallet_of


@dataclass
class Party:
    user: User
    headers: dict[str, str]


@dataclass
class CallDriver:
    client: AsyncClient
    runtime: Runtime
    clock: ManualClock

    async def party(self, role: Role, coins: int = 0) -> Party:
        """A new user with ``coins`` and an access token as ``POST /v1/auth/login`` issues
        it (logging in is tests/auth's subject; here it would only cost time)."""
        user = await make_user(self.runtime, role, coins=coins)
        token = issue_access_token(
            user_id=user.id,
            role=user.role,
            secret=self.runtime.settings.secret_key,
            now=self.clock.now(),
            ttl_seconds=self.runtime.settings.access_token_ttl_seconds,
        )
        return Party(user, {"Authorization": f"Bearer {token}"})

    async def post(self, path: str, who: Party, body: Any = None) -> Response:
        return await self.client.post(path, json=body, headers=who.headers)

    async def ring(self, caller: Party, host: Party) -> dict[str, Any]:
        r = await self.post("/v1/calls", caller, {"host_id": host.user.id})
        assert r.status_code == 201, r.text
        return dict(r.json()["call"])

    async def heartbeat(self, call_id: int, who: Party, media: bool = True) -> Response:
        return await self.post(f"/v1/calls/{call_id}/heartbeat", who, {"media_connected": media})

    async def connect(self, caller: Party, host: Party) -> int:
        """Ring, accept and report media on both sides: the call is active from now."""
        call = await self.ring(caller, host)
        r = await self.post(f"/v1/calls/{call['id']}/accept", host)
        assert r.status_code == 200, r.text
        await self.heartbeat(call["id"], caller)
        r = await self.heartbeat(call["id"], host)
        assert r.json()["call"]["status"] == "active", r.text
        return int(call["id"])

    async def both_heartbeat(self, call_id: int, caller: Party, host: Party) -> None:
        for who in (caller, host):
            r = await self.heartbeat(call_id, who)
            assert r.status_code == 200, r.text

    async def run(
        self, call_id: int, caller: Party, host: Party, until: float, step: float = 5
    ) -> None:
        """Advance the clock to ``until`` seconds after now in ``step``s, both parties
        heartbeating and the meter ticking at each step."""
        elapsed = 0.0
        while elapsed < until:
            move = min(step, until - elapsed)
            self.clock.advance(move)
            elapsed += move
            await self.both_heartbeat(call_id, caller, host)
            await self.tick()

    async def tick(self) -> TickResult:
        return await tick(self.runtime, self.clock.now())

    async def call(self, call_id: int, who: Party) -> dict[str, Any]:
        r = await self.client.get(f"/v1/calls/{call_id}", headers=who.headers)
        assert r.status_code == 200, r.text
        return dict(r.json()["call"])

    async def wallet(self, who: Party) -> tuple[int, int]:
        return await wallet_of(self.runtime, who.user.id)

    async def ledger_ok(self) -> None:
        await assert_ledger_ok(self.runtime)

    async def revenue(self) -> int:
        async with self.runtime.sessionmaker() as session:
            from callmeter.ledger import service as ledger
            from callmeter.models import Account, AccountKind

            account = await session.get(
                Account, await ledger.system_account_id(session, AccountKind.revenue)
            )
            assert account is not None
            return account.balance
