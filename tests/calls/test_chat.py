"""A call's chat (issue 17): messages and tips, stored on the server, bounded, delivered on
the call's stream. Over HTTP with an injected clock, on SQLite and PostgreSQL; the
cross-process delivery and the races are in test_chat_live.py."""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from callmeter.calls.feed import call_feed
from callmeter.kit.runtime import Runtime
from callmeter.models import Account, AccountKind, Role, Transfer
from tests.calls.driver import CallDriver, Party
from tests.calls.flood import flood


def say(text: str, msg_id: str) -> dict[str, str]:
    return {"body": text, "client_msg_id": msg_id}


async def active(driver: CallDriver, coins: int = 100) -> tuple[Party, Party, int]:
    caller, host = await driver.party(Role.client, coins), await driver.party(Role.host)
    return caller, host, await driver.connect(caller, host)


async def history(driver: CallDriver, call_id: int, who: Party, **query: Any) -> Any:
    r = await driver.client.get(f"/v1/calls/{call_id}/messages", params=query, headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def said(driver: CallDriver, call_id: int, who: Party) -> list[dict[str, Any]]:
    """What the parties said and tipped (the call's own story left out)."""
    items = (await history(driver, call_id, who))["items"]
    return [m for m in items if m["kind"] != "system"]


async def earnings_of(runtime: Runtime, user_id: int) -> int:
    async with runtime.sessionmaker() as session:
        balance = await session.scalar(
            select(Account.balance).where(
                Account.user_id == user_id, Account.kind == AccountKind.earnings
            )
        )
    return int(balance or 0)


class TestMessages:
    async def test_two_parties_talk_and_read_the_history(self, driver: CallDriver) -> None:
        caller, host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        r = await driver.post(url, caller, say("¿Me oyes?", "c1"))
        assert r.status_code == 201, r.text
        sent = r.json()
        assert (sent["kind"], sent["body"], sent["sender_id"]) == (
            "text",
            "¿Me oyes?",
            caller.user.id,
        )
        driver.clock.advance(1)
        assert (await driver.post(url, host, say("Sí,\nte oigo", "h1"))).status_code == 201
        page = await history(driver, call_id, caller)
        assert [(m["kind"], m["sender_id"], m["body"]) for m in page["items"]] == [
            ("system", None, "connected"),
            ("text", caller.user.id, "¿Me oyes?"),
            ("text", host.user.id, "Sí,\nte oigo"),
        ]
        assert page["next_after"] is None
        assert await history(driver, call_id, host) == page
        # paging: two at a time, oldest first
        first = await history(driver, call_id, host, limit=2)
        assert [m["body"] for m in first["items"]] == ["connected", "¿Me oyes?"]
        rest = await history(driver, call_id, host, limit=2, after=first["next_after"])
        assert [m["body"] for m in rest["items"]] == ["Sí,\nte oigo"]
        assert rest["next_after"] is None
        # an admin reads it too; a stranger learns nothing, not even that the call exists
        admin = await driver.party(Role.admin)
        assert (await history(driver, call_id, admin))["items"] == page["items"]
        stranger = await driver.party(Role.client, 50)
        r = await driver.client.get(url, headers=stranger.headers)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await driver.post(url, stranger, say("hola", "s1"))
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await driver.post(url, admin, say("hola", "a1"))
        assert r.status_code == 404, r.text  # admins read; only the parties talk

    async def test_a_ringing_call_has_a_chat_and_an_ended_one_is_read_only(
        self, driver: CallDriver
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call_id = (await driver.ring(caller, host))["id"]
        url = f"/v1/calls/{call_id}/messages"
        assert (await driver.post(url, caller, say("hola", "c1"))).status_code == 201
        assert (await driver.post(f"/v1/calls/{call_id}/end", caller)).status_code == 200
        r = await driver.post(url, host, say("perdona", "h1"))
        assert (r.status_code, r.json()["error"]) == (409, "call_ended")
        # a retry of a message the server already has still gets it, ended or not
        r = await driver.post(url, caller, say("hola", "c1"))
        assert r.status_code == 200, r.text
        assert [m["body"] for m in await said(driver, call_id, host)] == ["hola"]

    async def test_a_retry_stores_one_message(self, driver: CallDriver) -> None:
        caller, _host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        first = await driver.post(url, caller, say("hello", "same"))
        again = await driver.post(url, caller, say("hello", "same"))
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()
        other = await driver.post(url, caller, say("something else", "same"))
        assert (other.status_code, other.json()["error"]) == (409, "idempotency_conflict")
        assert len(await said(driver, call_id, caller)) == 1

    async def test_concurrent_retries_store_one_message(self, driver: CallDriver) -> None:
        caller, _host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        results = await asyncio.gather(
            *(driver.post(url, caller, say("once", "dup")) for _ in range(5))
        )
        assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 201]
        assert len({r.json()["id"] for r in results}) == 1

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ("", "body"),
            ("   \n  ", "body"),  # blank once trimmed
            ("x" * 1001, "body"),
            ("tab\there", "body"),  # control characters other than a line break
            ("bell\x07", "body"),
            ("rtl \u202e override", "body"),  # invisible formatting
            ("\ud800", "request"),  # a lone surrogate is not text (the whole body refused)
        ],
    )
    async def test_text_is_bounded(self, driver: CallDriver, body: str, field: str) -> None:
        caller, _host, call_id = await active(driver)
        r = await driver.client.post(  # as JSON escapes it: "\ud800" travels as text
            f"/v1/calls/{call_id}/messages",
            content=json.dumps(say(body, "m1")),
            headers={**caller.headers, "Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()["error"], r.json()["field"]) == (
            422,
            "validation_error",
            field,
        )

    async def test_text_is_stored_normalized_and_as_typed(self, driver: CallDriver) -> None:
        caller, _host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        typed = "  Cafe\u0301 <script>alert(1)</script> https://example.com  "
        r = await driver.post(url, caller, say(typed, "m1"))
        # NFC and trimmed; HTML is text like any other (the client renders it as text)
        assert r.json()["body"] == "Café <script>alert(1)</script> https://example.com"
        longest = "é" * 1000
        assert (await driver.post(url, caller, say(longest, "m2"))).status_code == 201
        bad_id = await driver.post(url, caller, {"body": "x", "client_msg_id": "a b"})
        assert bad_id.status_code == 422

    async def test_a_flood_gets_429_with_retry_after_per_sender(self, driver: CallDriver) -> None:
        caller, host, call_id = await active(driver)
        settings = driver.runtime.settings
        url = f"/v1/calls/{call_id}/messages"
        for n in range(settings.messages_per_window):
            assert (await driver.post(url, caller, say(f"m{n}", f"c{n}"))).status_code == 201
        r = await driver.post(url, caller, say("one more", "c-more"))
        assert (r.status_code, r.json()["error"]) == (429, "message_rate_limited")
        assert r.headers["Retry-After"] == str(settings.message_window_seconds)
        # the other party is not held back by the flood
        assert (await driver.post(url, host, say("calm down", "h1"))).status_code == 201
        driver.clock.advance(settings.message_window_seconds)
        assert (await driver.post(url, caller, say("again", "c-later"))).status_code == 201

    async def test_a_flood_through_two_processes_gets_the_limit_and_429s(
        self, driver: CallDriver, runtime: Runtime
    ) -> None:
        """300 messages at once, half through a second API process (its own engine and
        pool): exactly the limit is stored, every other answer is 429, none is 5xx, and
        the refused ones do not queue for a database connection."""
        caller, _host, call_id = await active(driver)
        results, peaks = await flood(
            driver, runtime, caller, f"/v1/calls/{call_id}/messages",
            lambda n: say(f"flood {n}", f"f{n}"),
        )  # fmt: skip
        limit = runtime.settings.messages_per_window
        assert Counter(r.status_code for r in results) == {201: limit, 429: 300 - limit}
        assert max(peaks) <= limit + 1, peaks  # the admitted ones and one retry lookup
        assert len(await said(driver, call_id, caller)) == limit

    async def test_a_call_stores_at_most_the_cap(self, driver: CallDriver) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"max_messages_per_call": 3}
        )
        caller, host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        for n, who in enumerate((caller, host, caller)):
            assert (await driver.post(url, who, say("x", f"m{n}"))).status_code == 201
        driver.clock.advance(3600)
        r = await driver.post(url, host, say("x", "late"))
        assert (r.status_code, r.json()["error"]) == (409, "message_limit_reached")


class TestStream:
    async def test_both_parties_get_each_message_once_and_a_reconnect_resumes(
        self, driver: CallDriver
    ) -> None:
        caller, host, call_id = await active(driver)
        feed = call_feed(driver.runtime)
        watchers = [feed.watch(call_id, p.user.id) for p in (caller, host)]
        url = f"/v1/calls/{call_id}/messages"
        ids = []
        for n in range(3):
            r = await driver.post(url, caller if n % 2 == 0 else host, say(f"m{n}", f"x{n}"))
            ids.append(r.json()["id"])

        async def received(watcher: Any, count: int) -> list[int]:
            got: list[int] = []
            while len(got) < count:
                update = await asyncio.wait_for(watcher.next(), 5)
                got += [m.id for m in update.messages if m.kind != "system"]
            return got

        for watcher in watchers:
            assert await received(watcher, 3) == ids
        # a stream that comes back after the first message gets the two after it, once
        resumed = feed.watch(call_id, host.user.id, after_message=ids[0])
        assert await received(resumed, 2) == ids[1:]
        for watcher in [*watchers, resumed]:
            feed.unwatch(watcher)

    async def test_event_ids_carry_both_positions(self) -> None:
        from callmeter.calls.events import resume_after, resume_messages_after

        assert (resume_after("s12m7"), resume_messages_after("s12m7")) == (12, 7)
        assert (resume_after("s12"), resume_messages_after("s12")) == (12, 0)
        for bad in ("m7", "s12m", "s12m7x", "s1m" + "9" * 19, "s٣m1"):
            assert (resume_after(bad), resume_messages_after(bad)) == (0, 0), bad


class TestTips:
    async def test_a_tip_moves_coins_once_and_is_in_the_chat_and_statements(
        self, driver: CallDriver
    ) -> None:
        caller, host, call_id = await active(driver, coins=100)
        url = f"/v1/calls/{call_id}/tips"
        balance, held = await driver.wallet(caller)
        r = await driver.post(url, caller, {"amount": 25, "client_msg_id": "tip-1"})
        assert r.status_code == 201, r.text
        assert (r.json()["kind"], r.json()["amount"], r.json()["body"]) == ("tip", 25, "")
        again = await driver.post(url, caller, {"amount": 25, "client_msg_id": "tip-1"})
        assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])
        other = await driver.post(url, caller, {"amount": 30, "client_msg_id": "tip-1"})
        assert (other.status_code, other.json()["error"]) == (409, "idempotency_conflict")
        assert await driver.wallet(caller) == (balance - 25, held)
        assert await earnings_of(driver.runtime, host.user.id) == 25  # 100% by default
        chat = await said(driver, call_id, host)
        assert [(m["kind"], m["amount"]) for m in chat] == [("tip", 25)]
        for who, amount in ((caller, -25), (host, 25)):
            r = await driver.client.get("/v1/wallet/statement", headers=who.headers)
            tips = [line for line in r.json()["items"] if line["kind"] == "tip"]
            assert [(t["amount"], t["call"]["id"]) for t in tips] == [(amount, call_id)]
        await driver.ledger_ok()

    async def test_a_shared_tip_is_one_statement_line_and_the_platform_gets_its_part(
        self, driver: CallDriver
    ) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"tip_host_share_percent": 80}
        )
        caller, host, call_id = await active(driver, coins=100)
        revenue = await driver.revenue()
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", caller, {"amount": 7, "client_msg_id": "t"}
        )
        assert r.status_code == 201, r.text
        assert await earnings_of(driver.runtime, host.user.id) == 5  # floor(7 * 80 / 100)
        assert await driver.revenue() == revenue + 2
        r = await driver.client.get("/v1/wallet/statement", headers=caller.headers)
        assert [line["amount"] for line in r.json()["items"] if line["kind"] == "tip"] == [-7]
        await driver.ledger_ok()

    async def test_who_may_tip_and_when(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        call_id = (await driver.ring(caller, host))["id"]
        url = f"/v1/calls/{call_id}/tips"

        def tip(n: int) -> dict[str, Any]:
            return {"amount": 5, "client_msg_id": f"t{n}"}

        r = await driver.post(url, caller, tip(0))  # nothing to thank for yet
        assert (r.status_code, r.json()["error"]) == (409, "invalid_call_state")
        await driver.post(f"/v1/calls/{call_id}/accept", host)
        await driver.both_heartbeat(call_id, caller, host)
        assert (await driver.post(url, caller, tip(1))).status_code == 201
        r = await driver.post(url, host, tip(2))
        assert r.status_code == 403, r.text  # hosts do not tip (a client route)
        stranger = await driver.party(Role.client, 100)
        r = await driver.post(url, stranger, tip(3))
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        await driver.post(f"/v1/calls/{call_id}/end", caller)
        window = driver.runtime.settings.tip_window_seconds
        driver.clock.advance(window)
        assert (await driver.post(url, caller, tip(4))).status_code == 201  # just in time
        driver.clock.advance(1)
        r = await driver.post(url, caller, tip(5))
        assert (r.status_code, r.json()["error"]) == (409, "tip_window_closed")
        await driver.ledger_ok()

    async def test_a_tip_beyond_the_available_coins_is_402_and_moves_nothing(
        self, driver: CallDriver
    ) -> None:
        caller, host, call_id = await active(driver, coins=30)
        balance, held = await driver.wallet(caller)
        available = balance - held  # the call's hold is not the client's to give
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", caller, {"amount": available + 1, "client_msg_id": "t"}
        )
        assert (r.status_code, r.json()["error"], r.json()["needed"]) == (
            402,
            "insufficient_funds",
            available + 1,
        )
        assert await driver.wallet(caller) == (balance, held)
        assert await said(driver, call_id, host) == []
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", caller, {"amount": available, "client_msg_id": "t"}
        )
        assert r.status_code == 201, r.text  # the same id, now affordable: tips once
        await driver.ledger_ok()

    @pytest.mark.parametrize("amount", [0, -5, 2.5, "5", True])
    async def test_the_amount_is_a_whole_positive_number(
        self, driver: CallDriver, amount: object
    ) -> None:
        caller, _host, call_id = await active(driver)
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", caller, {"amount": amount, "client_msg_id": "t"}
        )
        assert r.status_code == 422, r.text


async def test_the_ledger_check_sees_a_tip_without_its_coins(driver: CallDriver) -> None:
    """The chat's tips and the tip transfers agree, per call: a tip line whose coins never
    moved is a problem `callmeter ledger check` reports."""
    from callmeter.calls.check import check_calls

    caller, _host, call_id = await active(driver)
    r = await driver.post(f"/v1/calls/{call_id}/tips", caller, {"amount": 5, "client_msg_id": "t"})
    assert r.status_code == 201
    async with driver.runtime.sessionmaker() as session:
        assert await check_calls(session) == []
        from callmeter.models import CallMessage

        message = await session.get(CallMessage, r.json()["id"])
        assert message is not None
        message.amount = 6
        await session.commit()
    async with driver.runtime.sessionmaker() as session:
        problems = await check_calls(session)
        transfers = await session.scalars(select(Transfer).where(Transfer.call_id == call_id))
        assert sum(t.amount for t in transfers if t.kind == "tip") == 5
    assert problems == [
        f"call {call_id}: its chat shows 6 coins of tips; its tip transfers moved 5"
    ]


class TestStory:
    """The call's own events in its chat, written by the database where the call's state
    changes (migration 0015), whichever path changed it."""

    async def test_a_call_tells_its_story_until_the_coins_run_out(self, driver: CallDriver) -> None:
        interval = driver.runtime.settings.billing_interval_seconds
        caller, host = await driver.party(Role.client, 30), await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.post(f"/v1/calls/{call_id}/messages", caller, say("hola", "c1"))
        await driver.run(call_id, caller, host, until=3 * interval + 10)
        call = await driver.call(call_id, caller)
        assert (call["status"], call["end_reason"], call["charged"]) == (
            "ended",
            "insufficient_funds",
            30,
        )
        items = (await history(driver, call_id, host))["items"]
        story = [m["body"] for m in items]
        assert story[:2] == ["connected", "hola"], story
        assert story.count("low_balance") == 1, story
        assert story[-1] == "ended:insufficient_funds", story
        charges = [m for m in items if m["body"].startswith("charged:")]
        assert sum(m["amount"] for m in charges) == call["charged"]
        # the warning comes before the end; a line's time is when it was written (the
        # database's clock here, not the test's: see migration 0015), in order
        assert story.index("low_balance") < story.index("ended:insufficient_funds")
        system = [m for m in items if m["kind"] == "system"]
        assert all(m["sender_id"] is None for m in system)
        times = [m["created_at"] for m in system]
        assert times == sorted(times)

    async def test_a_call_that_never_connects_says_why(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 30), await driver.party(Role.host)
        call_id = (await driver.ring(caller, host))["id"]
        await driver.post(f"/v1/calls/{call_id}/decline", host)
        items = (await history(driver, call_id, caller))["items"]
        assert [(m["kind"], m["body"]) for m in items] == [("system", "ended:declined")]

    async def test_an_admins_end_is_in_the_story(self, driver: CallDriver) -> None:
        caller, _host, call_id = await active(driver)
        admin = await driver.party(Role.admin)
        assert (await driver.post(f"/v1/admin/calls/{call_id}/end", admin)).status_code == 200
        story = [m["body"] for m in (await history(driver, call_id, caller))["items"]]
        assert story == ["connected", "ended:admin"], story

    async def test_the_story_does_not_count_against_the_parties_cap(
        self, driver: CallDriver
    ) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"max_messages_per_call": 1}
        )
        caller, _host, call_id = await active(driver)  # "connected" is in the chat
        r = await driver.post(f"/v1/calls/{call_id}/messages", caller, say("one", "c1"))
        assert r.status_code == 201, r.text


async def test_a_receipt_lists_every_coin_the_call_moved(driver: CallDriver) -> None:
    interval = driver.runtime.settings.billing_interval_seconds
    caller, host, call_id = await active(driver, coins=100)
    await driver.post(f"/v1/calls/{call_id}/messages", caller, say("gracias", "c1"))
    await driver.run(call_id, caller, host, until=2 * interval + 5)
    await driver.post(f"/v1/calls/{call_id}/end", caller)
    tip = await driver.post(
        f"/v1/calls/{call_id}/tips", caller, {"amount": 15, "client_msg_id": "t"}
    )
    assert tip.status_code == 201, tip.text
    admin = await driver.party(Role.admin)
    r = await driver.client.post(
        f"/v1/admin/calls/{call_id}/refund",
        json={"amount": 5, "reason": "late start"},
        headers={**admin.headers, "Idempotency-Key": "receipt-refund"},
    )
    assert r.status_code == 200, r.text
    call = await driver.call(call_id, caller)
    for who in (caller, host, admin):
        r = await driver.client.get(f"/v1/calls/{call_id}/receipt", headers=who.headers)
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert (receipt["client"]["id"], receipt["host"]["id"]) == (caller.user.id, host.user.id)
        assert receipt["client"]["display_name"]
        assert receipt["host"]["display_name"]
        # one line per minute completed (2 min 5 s), at the boundary it was charged
        assert [c["coins"] for c in receipt["charges"]] == [10, 10], receipt["charges"]
        assert sum(c["coins"] for c in receipt["charges"]) == receipt["total_charged"] == 20
        assert ([t["coins"] for t in receipt["tips"]], receipt["total_tips"]) == ([15], 15)
        assert ([x["coins"] for x in receipt["refunds"]], receipt["total_refunded"]) == ([5], 5)
        assert receipt["talk_seconds"] == call["billed_seconds"]
        assert receipt["host_earned"] == call["host_earned"]
        assert receipt["transcript"] is None
    r = await driver.client.get(
        f"/v1/calls/{call_id}/receipt", params={"transcript": "true"}, headers=caller.headers
    )
    transcript = r.json()["transcript"]
    assert [m["body"] for m in transcript if m["kind"] == "text"] == ["gracias"]
    assert transcript[-1]["kind"] == "tip"
    stranger = await driver.party(Role.client, 10)
    r = await driver.client.get(f"/v1/calls/{call_id}/receipt", headers=stranger.headers)
    assert r.status_code == 404


class TestReview:
    """What a review of the chat found (issue 17's closing note lists them)."""

    async def test_a_frozen_client_cannot_tip(self, driver: CallDriver) -> None:
        """A payment dispute freezes the client: no calls, no purchases, and no coins
        leaving as tips either (a freeze that allowed tips would let disputed coins go)."""
        from datetime import UTC, datetime

        from callmeter.models import User

        caller, _host, call_id = await active(driver)
        async with driver.runtime.sessionmaker.begin() as session:
            user = await session.get(User, caller.user.id)
            assert user is not None
            user.frozen_at = datetime.now(UTC)
        balance = await driver.wallet(caller)
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", caller, {"amount": 5, "client_msg_id": "t"}
        )
        assert (r.status_code, r.json()["error"]) == (403, "account_frozen")
        assert await driver.wallet(caller) == balance

    async def test_a_retry_the_flood_gate_stops_still_gets_its_message(
        self, driver: CallDriver
    ) -> None:
        caller, _host, call_id = await active(driver)
        url = f"/v1/calls/{call_id}/messages"
        limit = driver.runtime.settings.messages_per_window
        for n in range(limit):
            assert (await driver.post(url, caller, say(f"m{n}", f"c{n}"))).status_code == 201
        again = await driver.post(url, caller, say("m0", "c0"))  # its answer was lost
        assert (again.status_code, again.json()["body"]) == (200, "m0")
        other = await driver.post(url, caller, say("not m0", "c0"))  # the id, reused
        assert (other.status_code, other.json()["error"]) == (409, "idempotency_conflict")
        tip = {"amount": 1, "client_msg_id": "c0"}  # a tip under a message's id
        as_tip = await driver.post(f"/v1/calls/{call_id}/tips", caller, tip)
        assert (as_tip.status_code, as_tip.json()["error"]) == (409, "idempotency_conflict")
        new = await driver.post(url, caller, say("more", "c-new"))
        assert (new.status_code, new.json()["error"]) == (429, "message_rate_limited")

    async def test_tips_keep_the_chat_s_pace_and_a_flood_gets_429_not_503(
        self, driver: CallDriver, runtime: Runtime
    ) -> None:
        """300 one-coin tips at once through two API processes: the pace's 5 pass, every
        other answer is 429 before it queues for a database connection or the call's lock
        (a CI run once saw two 503s: each refused tip read its user first)."""
        caller, _host, call_id = await active(driver, coins=1000)
        results, peaks = await flood(
            driver, runtime, caller, f"/v1/calls/{call_id}/tips",
            lambda n: {"amount": 1, "client_msg_id": f"tip{n}"},
        )  # fmt: skip
        limit = runtime.settings.messages_per_window
        assert Counter(r.status_code for r in results) == {201: limit, 429: 300 - limit}
        assert max(peaks) <= limit + 1, peaks
        await driver.ledger_ok()

    async def test_a_host_cannot_tip_even_when_the_gate_is_full(self, driver: CallDriver) -> None:
        _caller, host, call_id = await active(driver)
        for n in range(driver.runtime.settings.messages_per_window):
            said_ = await driver.post(f"/v1/calls/{call_id}/messages", host, say("hi", f"h{n}"))
            assert said_.status_code == 201
        r = await driver.post(
            f"/v1/calls/{call_id}/tips", host, {"amount": 1, "client_msg_id": "t"}
        )
        assert r.status_code == 403

    @pytest.mark.parametrize(
        "text",
        [
            "👩\u200d💻 and 🏳️\u200d🌈",  # emoji joined by U+200D
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with U+200C
            "e\u0301" * 500,  # 1,000 characters typed, 500 once NFC
        ],
    )
    async def test_joined_emoji_persian_and_text_that_nfc_shortens_are_accepted(
        self, driver: CallDriver, text: str
    ) -> None:
        caller, _host, call_id = await active(driver)
        r = await driver.post(f"/v1/calls/{call_id}/messages", caller, say(text, "m"))
        assert r.status_code == 201, r.text
        assert r.json()["body"] == unicodedata.normalize("NFC", text)

    async def test_a_refused_field_is_named_in_the_detail_too(self, driver: CallDriver) -> None:
        caller, _host, call_id = await active(driver)
        r = await driver.post(f"/v1/calls/{call_id}/messages", caller, say("bell\x07", "m"))
        assert r.json()["field"] == "body"
        assert r.json()["detail"].startswith("body: ")
