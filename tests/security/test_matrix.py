"""Every endpoint, for every kind of caller: the expected answer.

The endpoints come from the application's own route table (its OpenAPI document), so an
endpoint added without a rule here fails ``test_every_endpoint_has_a_rule``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient

from callmeter.app import create_app
from callmeter.auth.tokens import issue_access_token
from callmeter.config import Settings
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.calls.driver import CallDriver, Party

ACTORS = ("anonymous", "forged", "expired", "client_a", "client_b", "host", "other_host", "admin")
UNAUTHENTICATED = {"anonymous": 401, "forged": 401, "expired": 401}

# An expectation is a status, or "ok": any answer that is not 401/403/404/5xx (the caller
# got past authorisation; the call's state may still say 409).
Expect = int | str


def everyone(expect: Expect) -> dict[str, Expect]:
    return dict.fromkeys(ACTORS, expect)


def signed_in(expect: Expect, **overrides: Expect) -> dict[str, Expect]:
    return {**everyone(expect), **UNAUTHENTICATED, **overrides}


def only(
    allowed: tuple[str, ...], *, others: int, admin: Expect | None = None
) -> dict[str, Expect]:
    rule: dict[str, Expect] = {**signed_in(others)}
    for actor in allowed:
        rule[actor] = "ok"
    if admin is not None:
        rule["admin"] = admin
    return rule


CALL_PARTIES = ("client_a", "host")
ADMIN_ONLY = only(("admin",), others=403)

RULES: dict[tuple[str, str], dict[str, Expect]] = {
    ("GET", "/healthz"): everyone(200),
    ("GET", "/readyz"): everyone(200),
    ("GET", "/metrics"): everyone(200),
    ("POST", "/v1/auth/register"): everyone("ok"),
    ("POST", "/v1/auth/login"): everyone(401),  # wrong credentials, whoever asks
    ("GET", "/v1/me"): signed_in(200),
    ("PUT", "/v1/me"): signed_in("ok"),
    ("GET", "/v1/wallet"): signed_in(200, admin=404),
    ("GET", "/v1/wallet/entries"): signed_in(200, admin=404),
    ("GET", "/v1/wallet/statement"): signed_in(200, admin=404),
    ("GET", "/v1/wallet/statement.csv"): signed_in(200, admin=404),
    ("GET", "/v1/hosts"): signed_in(200),
    ("PUT", "/v1/hosts/me"): only(("host", "other_host"), others=403),
    ("POST", "/v1/hosts/me/presence"): only(("host", "other_host"), others=403),
    # a JSON body is not a picture: a host gets as far as the type check
    ("PUT", "/v1/hosts/me/avatar"): {**signed_in(403), "host": 415, "other_host": 415},
    ("DELETE", "/v1/hosts/me/avatar"): only(("host", "other_host"), others=403),
    ("GET", "/v1/hosts/{host_id}/avatar"): everyone(404),  # public; this host has none
    ("GET", "/v1/hosts/me/blocks"): only(("host", "other_host"), others=403),
    ("POST", "/v1/hosts/me/blocks"): only(("host", "other_host"), others=403),
    ("DELETE", "/v1/hosts/me/blocks/{client_id}"): only(("host", "other_host"), others=403),
    ("POST", "/v1/calls"): only(("client_a", "client_b"), others=403),
    ("GET", "/v1/calls"): signed_in(200),
    ("GET", "/v1/calls/{call_id}"): only(CALL_PARTIES, others=404, admin=200),
    ("POST", "/v1/calls/{call_id}/accept"): only(("host",), others=404) | {"client_a": 403},
    ("POST", "/v1/calls/{call_id}/decline"): only(("host",), others=404) | {"client_a": 403},
    ("POST", "/v1/calls/{call_id}/heartbeat"): only(CALL_PARTIES, others=404),
    ("POST", "/v1/calls/{call_id}/end"): only(CALL_PARTIES, others=404),
    ("POST", "/v1/calls/{call_id}/signal"): only(CALL_PARTIES, others=404),
    ("GET", "/v1/calls/{call_id}/events"): only(CALL_PARTIES, others=404, admin=200),
    # the chat: parties write, parties and admins read; the client tips (a host is refused
    # by role before the call is looked at, another client learns nothing of the call)
    ("POST", "/v1/calls/{call_id}/messages"): only(CALL_PARTIES, others=404),
    ("GET", "/v1/calls/{call_id}/messages"): only(CALL_PARTIES, others=404, admin=200),
    ("GET", "/v1/calls/{call_id}/receipt"): only(CALL_PARTIES, others=404, admin=200),
    # media credentials: the parties only, never an admin (no one watches a call)
    ("GET", "/v1/calls/{call_id}/media"): only(CALL_PARTIES, others=404),
    ("POST", "/v1/calls/{call_id}/tips"): only(("client_a",), others=403) | {"client_b": 404},
    # the token travels in the body (sendBeacon); the header is ignored
    ("POST", "/v1/calls/{call_id}/beacon-end"): only(CALL_PARTIES, others=404)
    | {"anonymous": 422, "forged": 401, "expired": 401},
    ("POST", "/v1/admin/grants"): ADMIN_ONLY,
    ("GET", "/v1/admin/ledger/check"): ADMIN_ONLY,
    ("GET", "/v1/admin/calls"): ADMIN_ONLY,
    ("GET", "/v1/admin/users"): ADMIN_ONLY,
    ("POST", "/v1/admin/calls/{call_id}/end"): ADMIN_ONLY,
    ("POST", "/v1/admin/calls/{call_id}/refund"): ADMIN_ONLY,
    # verified by LiveKit's signature only; without LiveKit configured it does not exist
    ("POST", "/v1/webhooks/livekit"): everyone(404),
    ("GET", "/v1/coin-packs"): signed_in(200),
    ("POST", "/v1/purchases"): only(("client_a", "client_b"), others=403),
    ("GET", "/v1/purchases"): signed_in(200),
    ("GET", "/v1/purchases/{purchase_id}"): only(("client_a",), others=404, admin=200),
    # verified by Stripe's signature only: unsigned, it is refused whoever sends it
    ("POST", "/v1/webhooks/stripe"): everyone(400),
    # the test provider's checkout: its session id is the credential, as a Stripe URL's is
    ("GET", "/v1/test-checkout/{session_id}"): everyone(200),
    ("POST", "/v1/test-checkout/{session_id}/{action}"): everyone(200),
    ("POST", "/v1/admin/users/{user_id}/unfreeze"): ADMIN_ONLY,
    ("GET", "/v1/earnings"): only(("host", "other_host"), others=403),
    # a host without matured earnings is refused (409/422), but gets past authorisation
    ("POST", "/v1/payouts"): only(("host", "other_host"), others=403),
    ("GET", "/v1/payouts"): only(("host", "other_host"), others=403),
    ("POST", "/v1/payouts/account-link"): only(("host", "other_host"), others=403),
    ("GET", "/v1/admin/payouts"): ADMIN_ONLY,
    ("POST", "/v1/admin/earnings-adjustments"): ADMIN_ONLY,
    # no payout exists in this world: an admin gets past authorisation to a 404
    ("POST", "/v1/admin/payouts/{payout_id}/approve"): only((), others=403, admin=404),
    ("POST", "/v1/admin/payouts/{payout_id}/reject"): only((), others=403, admin=404),
    ("POST", "/v1/admin/payouts/{payout_id}/paid"): only((), others=403, admin=404),
    ("POST", "/v1/admin/payouts/{payout_id}/failed"): only((), others=403, admin=404),
}


def api_routes(settings: Settings) -> set[tuple[str, str]]:
    spec = create_app(settings).openapi()
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }


def test_every_endpoint_has_a_rule(settings: Settings) -> None:
    routes = api_routes(settings)
    assert routes - RULES.keys() == set(), "endpoints without a security rule"
    assert RULES.keys() - routes == set(), "rules for endpoints that do not exist"


@dataclass
class World:
    parties: dict[str, Party]
    tokens: dict[str, str | None]
    call_id: int
    ended_call_id: int
    purchase_id: int
    checkout_session: str


async def build_world(driver: CallDriver, runtime: Runtime) -> World:
    a, b = await driver.party(Role.client, 100), await driver.party(Role.client, 100)
    host, other = await driver.party(Role.host), await driver.party(Role.host)
    third_host = await driver.party(Role.host)
    admin = await driver.party(Role.admin)
    # an ended call (for refunds) and a live ringing call between A and the host
    finished = await driver.ring(a, third_host)
    await driver.post(f"/v1/calls/{finished['id']}/end", a)
    call = await driver.ring(a, host)
    parties = {"client_a": a, "client_b": b, "host": host, "other_host": other, "admin": admin}
    now = runtime.clock.now()
    tokens: dict[str, str | None] = {
        name: p.headers["Authorization"].removeprefix("Bearer ") for name, p in parties.items()
    }
    tokens["anonymous"] = None
    tokens["forged"] = issue_access_token(
        user_id=admin.user.id, role="admin", secret="x" * 40, now=now, ttl_seconds=600
    )
    tokens["expired"] = issue_access_token(
        user_id=admin.user.id,
        role="admin",
        secret=runtime.settings.secret_key,
        now=now.replace(year=now.year - 1),
        ttl_seconds=600,
    )
    bought = await driver.client.post(
        "/v1/purchases",
        json={"pack_id": "eur-100"},
        headers={**a.headers, "Idempotency-Key": "matrix-world"},
    )
    assert bought.status_code == 201, bought.text
    session = bought.json()["checkout_url"].removeprefix("/test-checkout/")
    return World(
        parties, tokens, call["id"], finished["id"], bought.json()["purchase"]["id"], session
    )


def request_for(
    method: str, path: str, world: World, actor: str, free_host_id: int
) -> tuple[str, dict[str, Any]]:
    call_id = world.ended_call_id if path.endswith("/refund") else world.call_id
    client_id = world.parties["client_a"].user.id
    url = (
        path.replace("{call_id}", str(call_id))
        .replace("{client_id}", str(client_id))
        .replace("{user_id}", str(client_id))
        .replace("{host_id}", str(world.parties["host"].user.id))
        .replace("{purchase_id}", str(world.purchase_id))
        .replace("{session_id}", world.checkout_session)
        .replace("{action}", "pay")
        .replace("{payout_id}", "999999")
    )
    body: dict[str, Callable[[], Any]] = {
        "/v1/auth/register": lambda: {
            "username": f"new_{actor}",
            "password": "long enough",
            "role": "client",
        },
        "/v1/auth/login": lambda: {"username": "nobody", "password": "x"},
        "/v1/hosts/me": lambda: {"accepting_calls": True},
        "/v1/me": lambda: {"language": "es"} if method == "PUT" else None,
        "/v1/hosts/me/blocks": lambda: {"client_id": client_id} if method == "POST" else None,
        "/v1/calls": lambda: {"host_id": free_host_id},
        "/v1/calls/{call_id}/heartbeat": lambda: {"media_connected": False},
        "/v1/calls/{call_id}/signal": lambda: {"type": "ice", "payload": {"candidate": "x"}},
        "/v1/calls/{call_id}/messages": lambda: (
            {"body": "hi", "client_msg_id": f"m-{actor}"} if method == "POST" else None
        ),
        "/v1/calls/{call_id}/tips": lambda: {"amount": 1, "client_msg_id": f"t-{actor}"},
        "/v1/calls/{call_id}/beacon-end": lambda: (
            {"access_token": world.tokens[actor]} if world.tokens[actor] else {}
        ),
        "/v1/admin/grants": lambda: {"user_id": world.parties["client_b"].user.id, "amount": 5},
        "/v1/admin/calls/{call_id}/refund": lambda: {"reason": "matrix"},
        "/v1/webhooks/livekit": lambda: {"event": "room_started"},
        "/v1/purchases": lambda: {"pack_id": "eur-100"} if method == "POST" else None,
        "/v1/webhooks/stripe": lambda: {"type": "checkout.session.completed"},
        "/v1/payouts": lambda: {"amount": 1000} if method == "POST" else None,
        "/v1/admin/earnings-adjustments": lambda: {
            "host_id": world.parties["host"].user.id,
            "amount": 5,
            "reason": "matrix",
        },
        "/v1/admin/payouts/{payout_id}/reject": lambda: {"reason": "matrix"},
        "/v1/admin/payouts/{payout_id}/failed": lambda: {"reason": "matrix"},
        "/v1/admin/payouts/{payout_id}/paid": lambda: {"reference": "matrix"},
    }
    options: dict[str, Any] = {"headers": {"Idempotency-Key": f"matrix-{actor}"}}
    token = world.tokens[actor]
    if token and not path.endswith("/beacon-end"):
        options["headers"]["Authorization"] = f"Bearer {token}"
    if path in body:
        options["json"] = body[path]()
    return url, options


def _succeeds(expect: Expect) -> bool:
    return expect == "ok" or (isinstance(expect, int) and expect < 400)


@pytest.mark.parametrize("route", sorted(RULES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_matrix(
    route: tuple[str, str], driver: CallDriver, runtime: Runtime, client: AsyncClient
) -> None:
    method, path = route
    if path.endswith("/events"):
        pytest.skip("streams are covered in tests/calls/test_events.py (access included)")
    results: dict[str, int] = {}
    shared: tuple[World, Party] | None = None
    for actor in ACTORS:
        succeeds = _succeeds(RULES[route][actor])
        if succeeds or shared is None:
            # fresh: an actor's success changes state. Refusals share one: a refusal
            # changes nothing, and one that wrongly succeeds fails the test anyway.
            world, free = await build_world(driver, runtime), await driver.party(Role.host)
            if not succeeds:
                shared = (world, free)
        else:
            world, free = shared
        url, options = request_for(method, path, world, actor, free.user.id)
        response = await client.request(method, url, **options)
        results[actor] = response.status_code
        assert response.status_code < 500, (actor, response.text)
    wrong = {}
    for actor, expect in RULES[route].items():
        got = results[actor]
        ok = got not in (401, 403, 404) if expect == "ok" else got == expect
        if not ok:
            wrong[actor] = (expect, got)
    assert wrong == {}, f"{method} {path}: expected vs got {wrong}"
