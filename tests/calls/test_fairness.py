"""Fair to hosts (issue 11 point 9): one ringing call per client, a re-ring cool-down and an
unanswered-ring limit, host blocks, and the rate the client agreed to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.app import create_app, create_runtime
from callmeter.calls import blocks as hosts
from callmeter.calls import service as calls
from callmeter.errors import ClientBusy
from callmeter.kit.runtime import Runtime
from callmeter.models import Call, CallStatus, Role, User
from tests.calls.driver import CallDriver, Party

T = TypeVar("T")


def configure(driver: CallDriver, **settings: object) -> None:
    driver.runtime.settings = driver.runtime.settings.model_copy(update=settings)


async def lock_waiters(runtime: Runtime) -> int:
    """PostgreSQL backends of this database waiting for a lock another transaction holds."""
    async with runtime.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(result.scalar_one())


async def while_a_transaction_is_open(
    runtime: Runtime,
    backend: str,
    first: Callable[[AsyncSession], Awaitable[object]],
    second: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """Run ``first`` in a transaction and, before it commits, ``second`` in another; commit
    ``first`` only once ``second`` is stuck behind it (PostgreSQL: waiting for a lock;
    SQLite's ``BEGIN IMMEDIATE`` queues every writer anyway). Returns ``second``'s result,
    or raises its error."""

    async def in_own_transaction() -> T:
        async with runtime.sessionmaker.begin() as session:
            return await second(session)

    async with runtime.sessionmaker.begin() as session:
        await first(session)
        task = asyncio.create_task(in_own_transaction())
        if backend == "postgresql":
            for _ in range(500):  # bounded: at most ~5 s for the other backend to get stuck
                if await lock_waiters(runtime) or task.done():
                    break
                await asyncio.sleep(0.01)
            assert await lock_waiters(runtime) == 1, "the second transaction did not wait"
    return await task


async def user(runtime: Runtime, party: Party) -> User:
    async with runtime.sessionmaker() as session:
        found = await session.get(User, party.user.id)
        assert found is not None
        return found


async def unfinished_calls(runtime: Runtime, client_id: int) -> int:
    async with runtime.sessionmaker() as session:
        result = await session.execute(
            select(func.count())
            .select_from(Call)
            .where(Call.client_id == client_id, Call.status != CallStatus.ended)
        )
        return int(result.scalar_one())


class TestOneRingingCallPerClient:
    async def test_a_race_of_rings_is_decided_by_the_unique_index(
        self, driver: CallDriver, backend: str
    ) -> None:
        """Two rings to two hosts at once: both pass the "no unfinished call" check (the
        first is not committed yet); the partial unique index refuses the second."""
        runtime = driver.runtime
        caller = await user(runtime, await driver.party(Role.client, 100))
        h1, h2 = await driver.party(Role.host), await driver.party(Role.host)
        now = driver.clock.now()

        def ring(host: Party) -> Callable[[AsyncSession], Awaitable[Call]]:
            async def work(session: AsyncSession) -> Call:
                return await calls.create_call(
                    session,
                    client=caller,
                    host_id=host.user.id,
                    settings=runtime.settings,
                    now=now,
                )

            return work

        with pytest.raises(ClientBusy):
            await while_a_transaction_is_open(runtime, backend, ring(h1), ring(h2))
        assert await unfinished_calls(runtime, caller.id) == 1
        assert await driver.wallet(Party(caller, {})) == (100, 10)  # one hold, not two
        await driver.ledger_ok()

    async def test_concurrent_rings_over_http(self, driver: CallDriver) -> None:
        caller = await driver.party(Role.client, 100)
        many = [await driver.party(Role.host) for _ in range(8)]
        results = await asyncio.gather(
            *(driver.post("/v1/calls", caller, {"host_id": h.user.id}) for h in many)
        )
        answers = sorted((r.status_code, r.json().get("error")) for r in results)
        assert answers == [(201, None)] + [(409, "client_busy")] * 7
        assert await unfinished_calls(driver.runtime, caller.user.id) == 1
        assert await driver.wallet(caller) == (100, 10)
        await driver.ledger_ok()


async def ring_and_end_unconnected(
    driver: CallDriver, caller: Party, host: Party, how: str
) -> None:
    """A call from ``caller`` to ``host`` that ends ``how`` without ever connecting."""
    call = await driver.ring(caller, host)
    cid = call["id"]
    if how == "cancelled":
        await driver.post(f"/v1/calls/{cid}/end", caller)
    elif how == "declined":
        await driver.post(f"/v1/calls/{cid}/decline", host)
    elif how == "missed":
        driver.clock.advance(driver.runtime.settings.ring_timeout_seconds)
        await driver.tick()
    else:  # connect_failed
        await driver.post(f"/v1/calls/{cid}/accept", host)
        driver.clock.advance(driver.runtime.settings.connect_timeout_seconds)
        await driver.tick()
    assert (await driver.call(cid, caller))["end_reason"] == how


class TestReRingCooldown:
    @pytest.mark.parametrize("how", ["cancelled", "declined", "missed", "connect_failed"])
    async def test_a_call_that_never_connected_starts_a_cooldown(
        self, driver: CallDriver, how: str
    ) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        await ring_and_end_unconnected(driver, caller, host, how)

        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert r.status_code == 429
        body = r.json()
        assert (body["error"], body["retry_after"], r.headers["Retry-After"]) == (
            "ring_cooldown",
            60,
            "60",
        )
        assert await driver.wallet(caller) == (100, 0)  # nothing held for a refused ring

        driver.clock.advance(59.5)
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert (r.status_code, r.json()["retry_after"], r.headers["Retry-After"]) == (
            429,
            1,
            "1",
        )
        driver.clock.advance(0.5)
        await driver.ring(caller, host)

    async def test_the_ring_cancel_loop_no_longer_holds_the_host(self, driver: CallDriver) -> None:
        """Reported: ring, cancel, ring again at once … every other client got 409
        ``host_busy``, indefinitely. Now the re-ring is refused and the host is free."""
        attacker, other = await driver.party(Role.client, 100), await driver.party(Role.client, 100)
        host = await driver.party(Role.host)
        ring = {"host_id": host.user.id}
        held: int | None = None  # the attacker's ringing call
        others: list[int] = []
        for _ in range(120):  # two minutes, once a second
            if held is not None:
                await driver.post(f"/v1/calls/{held}/end", attacker)
            r = await driver.post("/v1/calls", attacker, ring)  # at once, the same moment
            held = r.json()["call"]["id"] if r.status_code == 201 else None
            others.append((await driver.post("/v1/calls", other, ring)).status_code)
            if others[-1] == 201:
                break
            driver.clock.advance(1)
        assert others == [409, 201]  # the first ring's second only; then the host is free
        attacker_calls = await driver.client.get("/v1/calls", headers=attacker.headers)
        assert len(attacker_calls.json()["items"]) == 1

    async def test_other_hosts_other_clients_and_connected_calls_are_not_held_back(
        self, driver: CallDriver
    ) -> None:
        caller, other = await driver.party(Role.client, 100), await driver.party(Role.client, 100)
        h1, h2, h3 = [await driver.party(Role.host) for _ in range(3)]
        await ring_and_end_unconnected(driver, caller, h1, "cancelled")
        second = await driver.ring(caller, h2)  # another host: fine
        await driver.post(f"/v1/calls/{second['id']}/end", caller)
        await driver.ring(other, h1)  # another client: fine
        call_id = await driver.connect(caller, h3)
        await driver.post(f"/v1/calls/{call_id}/end", caller)
        await driver.ring(caller, h3)  # the last call connected: no cool-down

    async def test_zero_turns_it_off(self, driver: CallDriver) -> None:
        configure(driver, rering_cooldown_seconds=0)
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        await ring_and_end_unconnected(driver, caller, host, "cancelled")
        await driver.ring(caller, host)

    async def test_it_holds_across_api_processes(
        self, driver: CallDriver, runtime: Runtime
    ) -> None:
        """The cool-down is read from the calls table: a second API process (its own
        engine and pool) refuses the re-ring the first one would."""
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        await ring_and_end_unconnected(driver, caller, host, "cancelled")
        second = create_runtime(runtime.settings, driver.clock)
        try:
            app = create_app(runtime=second)
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://b") as b:
                body = {"host_id": host.user.id}
                r = await b.post("/v1/calls", json=body, headers=caller.headers)
                assert (r.status_code, r.json()["error"]) == (429, "ring_cooldown")
        finally:
            await second.close()


class TestUnansweredRingLimit:
    async def test_rings_nobody_picks_up_are_limited_per_window(self, driver: CallDriver) -> None:
        configure(driver, unanswered_rings_per_window=3, ring_window_seconds=600)
        caller = await driver.party(Role.client, 100)
        many = [await driver.party(Role.host) for _ in range(5)]
        # an answered call does not count, even one that then failed to connect
        await ring_and_end_unconnected(driver, caller, many[0], "connect_failed")
        for host in many[1:4]:
            driver.clock.advance(10)
            await ring_and_end_unconnected(driver, caller, host, "cancelled")
        r = await driver.post("/v1/calls", caller, {"host_id": many[4].user.id})
        assert (r.status_code, r.json()["error"]) == (429, "ring_cooldown")
        # the oldest of the three unanswered rings leaves the window in 600 - 20 s
        assert (r.json()["retry_after"], r.headers["Retry-After"]) == (580, "580")
        driver.clock.advance(580)
        await driver.ring(caller, many[4])

    async def test_zero_turns_it_off(self, driver: CallDriver) -> None:
        configure(driver, unanswered_rings_per_window=0, rering_cooldown_seconds=0)
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        for _ in range(12):
            await ring_and_end_unconnected(driver, caller, host, "cancelled")


class TestHostBlocks:
    async def block(self, driver: CallDriver, host: Party, client: Party) -> dict[str, Any]:
        r = await driver.post("/v1/hosts/me/blocks", host, {"client_id": client.user.id})
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def test_a_blocked_client_is_told_the_host_is_away(self, driver: CallDriver) -> None:
        blocked, other = await driver.party(Role.client, 100), await driver.party(Role.client, 100)
        host, away = await driver.party(Role.host), await driver.party(Role.host)
        off = {"accepting_calls": False}
        await driver.client.put("/v1/hosts/me", json=off, headers=away.headers)
        await self.block(driver, host, blocked)

        to_blocking = await driver.post("/v1/calls", blocked, {"host_id": host.user.id})
        to_away = await driver.post("/v1/calls", blocked, {"host_id": away.user.id})
        assert to_blocking.status_code == to_away.status_code == 409
        assert to_blocking.json() == to_away.json()  # nothing tells a block from "away"
        assert to_blocking.json()["error"] == "host_unavailable"

        def listed(rows: list[dict[str, Any]]) -> bool:
            return next(h["accepting_calls"] for h in rows if h["id"] == host.user.id)

        seen_by_blocked = (await driver.client.get("/v1/hosts", headers=blocked.headers)).json()
        seen_by_other = (await driver.client.get("/v1/hosts", headers=other.headers)).json()
        assert (listed(seen_by_blocked), listed(seen_by_other)) == (False, True)
        await driver.ring(other, host)
        assert await driver.wallet(blocked) == (100, 0)

    async def test_blocking_ends_a_ringing_call_declined(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        await self.block(driver, host, caller)
        final = await driver.call(call["id"], caller)
        assert (final["status"], final["end_reason"], final["charged"]) == (
            "ended",
            "declined",
            0,
        )
        assert await driver.wallet(caller) == (50, 0)
        await driver.ledger_ok()

    async def test_blocking_leaves_an_answered_call_alone(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await self.block(driver, host, caller)
        assert (await driver.call(call_id, caller))["status"] == "active"

    async def test_block_unblock_and_list_are_idempotent(self, driver: CallDriver) -> None:
        clients = [await driver.party(Role.client, 100) for _ in range(3)]
        host = await driver.party(Role.host)
        first = await self.block(driver, host, clients[0])
        driver.clock.advance(5)
        assert await self.block(driver, host, clients[0]) == first  # the same block
        for c in clients[1:]:
            await self.block(driver, host, c)
        url = "/v1/hosts/me/blocks"
        page = (await driver.client.get(f"{url}?limit=2", headers=host.headers)).json()
        ids = sorted((c.user.id for c in clients), reverse=True)
        assert [b["client_id"] for b in page["items"]] == ids[:2]
        after = f"{url}?before={page['next_before']}"
        rest = (await driver.client.get(after, headers=host.headers)).json()
        assert ([b["client_id"] for b in rest["items"]], rest["next_before"]) == (ids[2:], None)

        one = f"{url}/{clients[0].user.id}"
        for _ in range(2):
            assert (await driver.client.delete(one, headers=host.headers)).status_code == 204
        await driver.ring(clients[0], host)
        other_host = await driver.party(Role.host)
        mine = (await driver.client.get(url, headers=other_host.headers)).json()
        assert mine == {"items": [], "next_before": None}  # each host sees its own blocks

    async def test_only_clients_can_be_blocked(self, driver: CallDriver) -> None:
        host, other_host = await driver.party(Role.host), await driver.party(Role.host)
        for bad in (other_host.user.id, 10**9):
            r = await driver.post("/v1/hosts/me/blocks", host, {"client_id": bad})
            assert (r.status_code, r.json()["error"]) == (404, "not_found")
        for body in ({"client_id": "1"}, {"client_id": 0}, {}, {"client_id": 1, "x": 1}):
            assert (await driver.post("/v1/hosts/me/blocks", host, body)).status_code == 422

    async def test_a_block_waits_for_a_ring_in_flight(
        self, driver: CallDriver, backend: str
    ) -> None:
        """A ring not yet committed when the host blocks its client: the block waits for it
        (the host's row lock) and then declines the call, instead of missing it."""
        runtime = driver.runtime
        caller_party = await driver.party(Role.client, 50)
        host_party = await driver.party(Role.host)
        caller, host = await user(runtime, caller_party), await user(runtime, host_party)
        now = driver.clock.now()

        async def ring(session: AsyncSession) -> Call:
            return await calls.create_call(
                session, client=caller, host_id=host.id, settings=runtime.settings, now=now
            )

        async def block(session: AsyncSession) -> object:
            return await hosts.block(session, host, client_id=caller.id, now=now)

        await while_a_transaction_is_open(runtime, backend, ring, block)
        assert await unfinished_calls(runtime, caller.id) == 0
        assert await driver.wallet(caller_party) == (50, 0)
        await driver.ledger_ok()


class TestExpectedRate:
    async def test_a_raised_rate_is_refused_with_the_current_rate(self, driver: CallDriver) -> None:
        """Reported: listed at 10, raised to 10,000 before the ring: 10,000 held."""
        caller, host = await driver.party(Role.client, 20_000), await driver.party(Role.host)
        listed = (await driver.client.get("/v1/hosts", headers=caller.headers)).json()
        shown = next(h["rate"] for h in listed if h["id"] == host.user.id)
        assert shown == 10
        await driver.client.put("/v1/hosts/me", json={"rate": 10_000}, headers=host.headers)

        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id, "expected_rate": 10})
        assert r.status_code == 409
        assert r.json() == {
            "error": "rate_changed",
            "detail": "the host's rate is now 10000 coins per interval",
            "rate": 10_000,
        }
        assert await driver.wallet(caller) == (20_000, 0)  # nothing held
        assert await unfinished_calls(driver.runtime, caller.user.id) == 0

        body = {"host_id": host.user.id, "expected_rate": r.json()["rate"]}
        r = await driver.post("/v1/calls", caller, body)  # the client agrees to the new rate
        assert (r.status_code, r.json()["call"]["rate"]) == (201, 10_000)
        assert await driver.wallet(caller) == (20_000, 10_000)

    async def test_without_expected_rate_the_current_rate_applies(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        await driver.client.put("/v1/hosts/me", json={"rate": 25}, headers=host.headers)
        assert (await driver.ring(caller, host))["rate"] == 25

    @pytest.mark.parametrize("bad", [0, -10, "10", 10.5, True, 10**13])
    async def test_expected_rate_is_validated(self, driver: CallDriver, bad: object) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id, "expected_rate": bad})
        assert r.status_code == 422

    def test_openapi_documents_the_structured_fields(self, runtime: Runtime) -> None:
        spec = create_app(runtime=runtime).openapi()
        post = spec["paths"]["/v1/calls"]["post"]
        body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schemas = spec["components"]["schemas"]
        assert "expected_rate" in schemas[body_ref.rsplit("/", 1)[1]]["properties"]

        def fields(status: str) -> set[str]:
            ref = post["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            return set(schemas[ref.rsplit("/", 1)[1]]["properties"])

        assert fields("409") == {"error", "detail", "rate"}
        assert fields("429") == {"error", "detail", "retry_after"}
        assert "Retry-After" in post["responses"]["429"]["headers"]
