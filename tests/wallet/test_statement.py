"""The statement a person reads (issue 16): one line per event, however the ledger split it."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callmeter.models import Posting, Role, Transfer
from callmeter.wallet.statement import CALL_CHARGE, lines_of
from tests.calls.driver import CallDriver

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
KINDS = ["call_charge", "host_share", "refund", "grant", "purchase"]


@st.composite
def postings(draw: st.DrawFn) -> list[tuple[Posting, Transfer]]:
    """A wallet's postings newest first: events of one or two postings (a call's charge or
    refund in two parts), each event with its own moment."""
    rows: list[tuple[Posting, Transfer]] = []
    next_id = 1000
    balance = 0
    for n in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(KINDS))
        call_id = (
            draw(st.integers(1, 3)) if kind in ("call_charge", "host_share", "refund") else None
        )
        parts = draw(st.integers(1, 2)) if call_id is not None else 1
        at = T0 + timedelta(seconds=n)
        for part in range(parts):
            amount = draw(st.integers(-50, 50).filter(bool))
            balance += amount
            part_kind = (
                ("call_charge", "host_share")[part]
                if kind in ("call_charge", "host_share")
                else kind
            )
            transfer = Transfer(
                id=next_id, kind=part_kind, call_id=call_id, created_at=at, amount=abs(amount)
            )
            rows.append((Posting(id=next_id, amount=amount, balance_after=balance), transfer))
            next_id -= 1
    return rows


@given(postings())
def test_lines_keep_every_coin_and_merge_only_one_event(
    rows: list[tuple[Posting, Transfer]],
) -> None:
    lines = lines_of(rows)
    # the postings of each line: from its id up to the newer line's
    bounds = [line.id for line in lines]
    groups = [
        [(p, t) for p, t in rows if low <= p.id < high]
        for low, high in zip(bounds, [10**9, *bounds], strict=False)
    ]
    assert sum(len(g) for g in groups) == len(rows)  # every posting in exactly one line
    for line, group in zip(lines, groups, strict=True):
        assert line.amount == sum(p.amount for p, _ in group)
        assert line.balance_after == group[0][0].balance_after  # after its newest posting
        events = {(t.call_id, t.created_at) for _, t in group}
        assert len(events) == 1
        assert len(group) == 1 or group[0][1].call_id is not None
        kinds = {t.kind for _, t in group}
        assert kinds <= {"call_charge", "host_share"} or len(kinds) == 1
    # and postings of one event are never split over two lines
    for (p, t), (_, u) in itertools.pairwise(rows):
        same = t.call_id is not None and (t.call_id, t.created_at) == (u.call_id, u.created_at)
        same = same and (t.kind == u.kind or {t.kind, u.kind} <= {"call_charge", "host_share"})
        assert (p.id in bounds) != same


async def test_a_call_charge_is_one_line_with_the_other_party_and_its_talk_time(
    driver: CallDriver,
) -> None:
    caller = await driver.party(Role.client, 1000)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=125, step=5)  # two 60 s intervals
    r = await driver.post(f"/v1/calls/{call_id}/end", caller)
    assert r.status_code == 200

    mine = (await driver.client.get("/v1/wallet/statement", headers=caller.headers)).json()
    kinds = [line["kind"] for line in mine["items"]]
    assert kinds.count(CALL_CHARGE) == 2, kinds
    assert "host_share" not in kinds  # the platform's split is the admin's business
    charge = next(line for line in mine["items"] if line["kind"] == CALL_CHARGE)
    assert charge["amount"] == -10
    assert charge["call"] == {
        "id": call_id, "with_user_id": host.user.id,
        "with_name": host.user.display_name, "seconds": 60,
    }  # fmt: skip
    assert mine["items"][0]["balance_after"] == 1000 - 20
    assert mine["items"][-1]["kind"] == "grant"

    earned = (await driver.client.get("/v1/wallet/statement", headers=host.headers)).json()
    shown = [(line["kind"], line["amount"], line["call"]["seconds"]) for line in earned["items"]]
    assert shown == [(CALL_CHARGE, 7, 60), (CALL_CHARGE, 7, 60)]
    assert earned["items"][0]["call"]["with_name"] == caller.user.display_name


async def test_pages_of_one_line_walk_every_line_once(driver: CallDriver) -> None:
    caller = await driver.party(Role.client, 1000)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=245, step=5)
    await driver.post(f"/v1/calls/{call_id}/end", caller)
    whole = (await driver.client.get("/v1/wallet/statement", headers=caller.headers)).json()
    walked: list[dict[str, object]] = []
    before = None
    while True:
        query = "?limit=1" + (f"&before={before}" if before else "")
        page = (
            await driver.client.get(f"/v1/wallet/statement{query}", headers=caller.headers)
        ).json()
        walked += page["items"]
        before = page["next_before"]
        if before is None:
            break
    assert walked == whole["items"]
    assert len(walked) == 5  # the grant and four charges


async def test_the_csv_export_has_every_line_and_no_formula(driver: CallDriver) -> None:
    caller = await driver.party(Role.client, 1000)
    host = await driver.party(Role.host)
    async with driver.runtime.sessionmaker.begin() as session:
        user = await session.get(type(host.user), host.user.id)
        assert user is not None
        user.display_name = "=HYPERLINK(1)"
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=65, step=5)
    await driver.post(f"/v1/calls/{call_id}/end", caller)
    r = await driver.client.get("/v1/wallet/statement.csv", headers=caller.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["date", "kind", "call", "with", "seconds", "amount", "balance_after"]
    assert [row[1] for row in rows[1:]] == [CALL_CHARGE, "grant"]
    assert rows[1][3:6] == ["'=HYPERLINK(1)", "60", "-10"]
    assert (await driver.client.get("/v1/wallet/statement.csv")).status_code == 401
