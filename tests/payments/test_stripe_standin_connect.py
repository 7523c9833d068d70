"""Stripe Connect (Express payouts) on the stand-in, through the real stripe package (16.1.0):
accounts, onboarding links, onboarding and restriction events, transfers refused and made,
retries with one idempotency key, reversals, list paging, and Connect webhooks signed as
Stripe signs them (events about a connected account carry it at the top level)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.payments.stripe_standin import (
    ACCOUNT_LINK_TTL,
    CONNECT_WEBHOOK_SECRET,
    PLATFORM_BALANCE,
    SECRET_KEY,
    WEBHOOK_SECRET,
    NoBackoffHTTPXClient,
    StripeStandin,
    running_stripe,
)

# See test_stripe_standin.py: stripe.HTTPXClient's `data=<str>` warning, ignored narrowly.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

NOW = 1_800_000_000
TRANSFERS = "POST /v1/transfers"


@pytest.fixture
async def standin() -> AsyncIterator[StripeStandin]:
    async with running_stripe() as server:
        server.now = NOW
        yield server


@pytest.fixture
async def http() -> AsyncIterator[NoBackoffHTTPXClient]:
    client = NoBackoffHTTPXClient()
    yield client
    await client.close_async()


@pytest.fixture
def client(standin: StripeStandin, http: NoBackoffHTTPXClient) -> stripe.StripeClient:
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": standin.url}, http_client=http, max_network_retries=2
    )


def host_account(**extra: Any) -> dict[str, Any]:
    return {
        "type": "express",
        "country": "DE",
        "email": "host-7@callmeter.test",
        "capabilities": {"transfers": {"requested": True}},
        "business_type": "individual",
        "metadata": {"user_id": "7"},
        **extra,
    }


async def express(client: stripe.StripeClient, key: str = "host-7", **extra: Any) -> stripe.Account:
    return await client.v1.accounts.create_async(
        host_account(**extra),  # type: ignore[arg-type]
        options={"idempotency_key": key},
    )


async def onboarded(client: stripe.StripeClient, standin: StripeStandin, key: str = "host-7"
                    ) -> str:  # fmt: skip
    account = await express(client, key)
    standin.onboard(account.id)
    return account.id


def payout(destination: str, amount: int = 1500, **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "eur",
        "destination": destination,
        "metadata": {"payout_id": "31", "user_id": "7"},
        "description": "callmeter payout 31",
        "transfer_group": "payout-31",
        **extra,
    }


async def transfer(client: stripe.StripeClient, destination: str, key: str, amount: int = 1500,
                   **extra: Any) -> stripe.Transfer:  # fmt: skip
    return await client.v1.transfers.create_async(
        payout(destination, amount, **extra),  # type: ignore[arg-type]
        options={"idempotency_key": key},
    )


class TestAccounts:
    async def test_create_and_retrieve_an_express_account(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        assert account.id.startswith("acct_")
        assert (account.object, account.type, account.country) == ("account", "express", "DE")
        assert (account.email, account.business_type, account.default_currency) == (
            "host-7@callmeter.test",
            "individual",
            "eur",
        )
        assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
            False,
            False,
            False,
        )
        assert account.capabilities is not None
        assert account.capabilities.to_dict() == {"transfers": "inactive"}
        assert account.metadata is not None
        assert account.metadata.to_dict() == {"user_id": "7"}
        assert account.created == NOW
        requirements = account.requirements
        assert requirements is not None
        assert requirements.disabled_reason == "requirements.past_due"
        assert requirements.currently_due is not None
        assert "external_account" in requirements.currently_due
        assert requirements.past_due == requirements.currently_due
        assert account.controller is not None
        assert account.controller.stripe_dashboard is not None
        assert account.controller.stripe_dashboard.type == "express"

        [recorded] = standin.requests
        assert recorded.params["capabilities"] == {"transfers": {"requested": "true"}}
        assert recorded.params["metadata"] == {"user_id": "7"}

        again = await client.v1.accounts.retrieve_async(account.id)
        assert again.to_dict() == account.to_dict()

        replayed = await express(client)  # the same key: the same account
        assert replayed.id == account.id
        assert replayed.last_response is not None
        assert replayed.last_response.headers["idempotent-replayed"] == "true"
        assert list(standin.accounts) == [account.id]

    async def test_an_unknown_account_is_a_403_as_at_stripe(
        self, client: stripe.StripeClient
    ) -> None:
        with pytest.raises(stripe.PermissionError) as refused:
            await client.v1.accounts.retrieve_async("acct_nobody")
        assert refused.value.http_status == 403
        assert refused.value.code is None  # stripe-python gives a PermissionError no code…
        assert refused.value.json_body is not None  # …it is in the body
        assert refused.value.json_body["error"]["code"] == "account_invalid"
        assert "does not have access to account 'acct_nobody'" in str(refused.value.user_message)

    @pytest.mark.parametrize(
        ("change", "param", "code"),
        [
            ({"type": None}, "type", "parameter_missing"),
            ({"type": "standard"}, "type", "parameter_invalid"),
            ({"business_type": "guild"}, "business_type", "parameter_invalid"),
            ({"coupon": "x"}, "coupon", "parameter_unknown"),
            ({"capabilities": {"transfers": {"requested": "yes"}}},
             "capabilities[transfers][requested]", "parameter_invalid"),
        ],
    )  # fmt: skip
    async def test_bad_parameters_are_refused_and_not_saved(
        self,
        client: stripe.StripeClient,
        standin: StripeStandin,
        change: dict[str, Any],
        param: str,
        code: str,
    ) -> None:
        params = {k: v for k, v in {**host_account(), **change}.items() if v is not None}
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await client.v1.accounts.create_async(params, options={"idempotency_key": "k"})  # type: ignore[arg-type]
        assert (refused.value.http_status, refused.value.param, refused.value.code) == (
            400,
            param,
            code,
        )
        assert standin.accounts == {}
        assert (await express(client, "k")).id in standin.accounts  # the key is still free

    async def test_a_platform_without_approval_cannot_ask_for_transfers_alone(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        standin.transfers_only_allowed = False
        with pytest.raises(stripe.InvalidRequestError, match="needs approval") as refused:
            await express(client, "k1")
        assert refused.value.param == "capabilities"
        both = {"transfers": {"requested": True}, "card_payments": {"requested": True}}
        account = await express(client, "k2", capabilities=both)
        assert account.capabilities is not None
        assert account.capabilities.to_dict() == {
            "transfers": "inactive",
            "card_payments": "inactive",
        }
        recipient = await express(client, "k3", tos_acceptance={"service_agreement": "recipient"})
        assert recipient.tos_acceptance is not None
        assert recipient.tos_acceptance.service_agreement == "recipient"


class TestOnboarding:
    async def test_an_onboarding_link(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        link = await client.v1.account_links.create_async(
            {
                "account": account.id,
                "refresh_url": "https://callmeter.test/payouts/refresh",
                "return_url": "https://callmeter.test/payouts/return",
                "type": "account_onboarding",
            }
        )
        assert link.object == "account_link"
        assert (link.created, link.expires_at) == (NOW, NOW + ACCOUNT_LINK_TTL)
        assert link.url.startswith(f"{standin.url}/connect/setup/e/{account.id}/")
        stored = standin.account_links[link.url]
        assert (stored["_account"], stored["_return_url"]) == (
            account.id,
            "https://callmeter.test/payouts/return",
        )

    @pytest.mark.parametrize(
        ("change", "status", "param", "code"),
        [
            ({"account": "acct_nobody"}, 400, "account", "resource_missing"),
            ({"return_url": None}, 400, "return_url", "parameter_missing"),
            ({"type": None}, 400, "type", "parameter_missing"),
            ({"type": "account_update"}, 400, "type", "parameter_invalid"),
        ],
    )
    async def test_bad_links_are_refused(
        self,
        client: stripe.StripeClient,
        change: dict[str, Any],
        status: int,
        param: str,
        code: str,
    ) -> None:
        account = await express(client)
        params = {
            "account": account.id,
            "refresh_url": "https://callmeter.test/r",
            "return_url": "https://callmeter.test/b",
            "type": "account_onboarding",
            **change,
        }
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await client.v1.account_links.create_async(
                {k: v for k, v in params.items() if v is not None}  # type: ignore[arg-type]
            )
        assert (refused.value.http_status, refused.value.param, refused.value.code) == (
            status,
            param,
            code,
        )

    async def test_onboarding_produces_account_updated_for_the_connect_endpoint(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        standin.now = NOW + 600
        event = standin.onboard(account.id)
        assert event["type"] == "account.updated"
        assert event["account"] == account.id  # a Connect event names the account on top
        assert list(event)[:3] == ["id", "object", "account"]
        assert event["created"] == NOW + 600
        assert event["request"] == {"id": None, "idempotency_key": None}
        obj = event["data"]["object"]
        assert (obj["id"], obj["object"]) == (account.id, "account")
        assert (obj["details_submitted"], obj["payouts_enabled"], obj["charges_enabled"]) == (
            True,
            True,
            False,  # transfers only: no card_payments capability, no charges
        )
        assert obj["capabilities"] == {"transfers": "active"}
        assert obj["requirements"]["currently_due"] == []
        assert obj["requirements"]["disabled_reason"] is None
        previous = event["data"]["previous_attributes"]
        assert previous["capabilities"] == {"transfers": "inactive"}
        assert (previous["details_submitted"], previous["payouts_enabled"]) == (False, False)
        assert "charges_enabled" not in previous
        assert previous["requirements"]["disabled_reason"] == "requirements.past_due"
        assert standin.events[event["id"]] is event

        fetched = await client.v1.accounts.retrieve_async(account.id)
        assert (fetched.payouts_enabled, fetched.details_submitted) == (True, True)
        assert (await client.v1.events.retrieve_async(event["id"])).account == account.id
        with pytest.raises(ValueError, match="already"):
            standin.onboard(account.id)

        restricted = standin.restrict(account.id)
        assert (restricted["type"], restricted["account"]) == ("account.updated", account.id)
        obj = restricted["data"]["object"]
        assert (obj["payouts_enabled"], obj["capabilities"]) == (False, {"transfers": "inactive"})
        assert obj["requirements"]["disabled_reason"] == "requirements.past_due"
        assert restricted["data"]["previous_attributes"]["payouts_enabled"] is True
        assert standin.events_of("account.updated", account.id) == [event, restricted]

    async def test_onboarding_pending_verification_keeps_payouts_off(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        event = standin.onboard(account.id, payouts_enabled=False)
        obj = event["data"]["object"]
        assert (obj["details_submitted"], obj["payouts_enabled"]) == (True, False)
        assert obj["capabilities"] == {"transfers": "pending"}
        assert obj["requirements"]["disabled_reason"] == "requirements.pending_verification"
        assert obj["requirements"]["pending_verification"] != []
        later = standin.onboard(account.id)
        assert later["data"]["previous_attributes"]["capabilities"] == {"transfers": "pending"}


class TestTransfers:
    async def test_refused_before_onboarding_made_after(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await transfer(client, account.id, "payout-31")
        assert (refused.value.http_status, refused.value.code) == (
            400,
            "insufficient_capabilities_for_transfer",
        )
        assert refused.value.json_body is not None
        assert refused.value.json_body["error"]["type"] == "invalid_request_error"
        assert "capabilities enabled: transfers" in str(refused.value.user_message)
        assert standin.transfers == {}

        standin.onboard(account.id)
        # The refusal came from a running endpoint: Stripe saved it under the key and replays
        # it; a payout retried after onboarding needs a new key.
        with pytest.raises(stripe.InvalidRequestError) as replayed:
            await transfer(client, account.id, "payout-31")
        assert replayed.value.code == "insufficient_capabilities_for_transfer"
        assert replayed.value.headers is not None
        assert replayed.value.headers["idempotent-replayed"] == "true"
        assert standin.transfers == {}

        made = await transfer(client, account.id, "payout-31-b")
        assert made.id.startswith("tr_")
        assert (made.object, made.amount, made.amount_reversed, made.currency) == (
            "transfer",
            1500,
            0,
            "eur",
        )
        assert (made.destination, made.reversed, made.created) == (account.id, False, NOW)
        assert made.metadata.to_dict() == {"payout_id": "31", "user_id": "7"}
        assert (made.description, made.transfer_group) == ("callmeter payout 31", "payout-31")
        assert made.reversals.total_count == 0  # type: ignore[attr-defined]
        assert standin.platform_balance["eur"] == PLATFORM_BALANCE - 1500
        fetched = await client.v1.transfers.retrieve_async(made.id)
        assert fetched.to_dict() == made.to_dict()

        [created] = standin.events_of("transfer.created")
        assert "account" not in created  # the platform's own object: its account endpoint
        assert created["data"]["object"] == made.to_dict()
        assert made.last_response is not None
        assert created["request"] == {
            "id": made.last_response.request_id,
            "idempotency_key": "payout-31-b",
        }

    async def test_above_the_platform_balance_is_balance_insufficient(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account_id = await onboarded(client, standin)
        standin.platform_balance["eur"] = 2000
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await transfer(client, account_id, "p1", amount=2001)
        assert (refused.value.http_status, refused.value.code) == (400, "balance_insufficient")
        assert "insufficient available funds" in str(refused.value.user_message)
        await transfer(client, account_id, "p2", amount=1500)
        with pytest.raises(stripe.InvalidRequestError, match="insufficient available funds"):
            await transfer(client, account_id, "p3", amount=501)
        await transfer(client, account_id, "p4", amount=500)
        assert standin.platform_balance["eur"] == 0
        assert standin.platform_balance["usd"] == PLATFORM_BALANCE  # a currency of its own
        assert [t["amount"] for t in standin.transfers.values()] == [1500, 500]

    async def test_a_restricted_account_gets_no_transfer(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account_id = await onboarded(client, standin)
        await transfer(client, account_id, "p1")
        standin.restrict(account_id)
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await transfer(client, account_id, "p2")
        assert refused.value.code == "insufficient_capabilities_for_transfer"
        assert len(standin.transfers) == 1

    @pytest.mark.parametrize(
        ("change", "param", "code"),
        [
            ({"destination": "acct_nobody"}, "destination", "resource_missing"),
            ({"amount": None}, "amount", "parameter_missing"),
            ({"amount": 0}, "amount", "parameter_invalid"),
            ({"currency": None}, "currency", "parameter_missing"),
            ({"source_transaction": "ch_1"}, "source_transaction", "parameter_invalid"),
        ],
    )
    async def test_bad_parameters_are_refused_and_not_saved(
        self,
        client: stripe.StripeClient,
        standin: StripeStandin,
        change: dict[str, Any],
        param: str,
        code: str,
    ) -> None:
        account_id = await onboarded(client, standin)
        params = {k: v for k, v in {**payout(account_id), **change}.items() if v is not None}
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await client.v1.transfers.create_async(params, options={"idempotency_key": "k"})  # type: ignore[arg-type]
        assert (refused.value.http_status, refused.value.param, refused.value.code) == (
            400,
            param,
            code,
        )
        assert (await transfer(client, account_id, "k")).id in standin.transfers  # key free

    async def test_a_500_is_retried_with_the_same_key_and_makes_one_transfer(
        self, client: stripe.StripeClient, standin: StripeStandin, http: NoBackoffHTTPXClient
    ) -> None:
        account_id = await onboarded(client, standin)
        standin.fail(TRANSFERS, times=1, status=500)
        made = await transfer(client, account_id, "payout-31")
        attempts = standin.calls_to(TRANSFERS)
        assert [(r.status, r.idempotency_key, r.replayed) for r in attempts] == [
            (500, "payout-31", False),
            (200, "payout-31", False),  # the 500 came before anything ran
        ]
        assert list(standin.transfers) == [made.id]
        assert len(standin.events_of("transfer.created")) == 1
        assert standin.platform_balance["eur"] == PLATFORM_BALANCE - 1500
        assert len(http.backoffs) == 1

    async def test_a_lost_answer_is_replayed_one_transfer(
        self, client: stripe.StripeClient, standin: StripeStandin, http: NoBackoffHTTPXClient
    ) -> None:
        account_id = await onboarded(client, standin)
        standin.fail(TRANSFERS, times=1, status=500, after=True)
        made = await transfer(client, account_id, "payout-31")
        attempts = standin.calls_to(TRANSFERS)
        assert [(r.status, r.replayed) for r in attempts] == [(500, False), (200, True)]
        assert list(standin.transfers) == [made.id]
        [created] = standin.events_of("transfer.created")
        assert created["data"]["object"]["id"] == made.id
        assert standin.platform_balance["eur"] == PLATFORM_BALANCE - 1500
        assert len(http.backoffs) == 1

    async def test_a_lost_answer_and_no_retries_left_still_made_the_transfer(
        self, standin: StripeStandin, http: NoBackoffHTTPXClient
    ) -> None:
        """What the caller must reconcile: its call failed, yet the transfer exists; the same
        key later gets it back."""
        once = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin.url},
                                   http_client=http, max_network_retries=0)  # fmt: skip
        account_id = await onboarded(once, standin)
        standin.fail(TRANSFERS, times=1, status=503, after=True)
        with pytest.raises(stripe.APIError) as lost:
            await transfer(once, account_id, "payout-31")
        assert lost.value.http_status == 503
        [made] = standin.transfers
        assert (await transfer(once, account_id, "payout-31")).id == made
        assert len(standin.transfers) == 1

    async def test_list_by_destination_with_paging(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        host = await onboarded(client, standin, "host-7")
        other = await onboarded(client, standin, "host-8")
        ids = []
        for i in range(5):
            standin.now = NOW + i * 60
            ids.append((await transfer(client, host, f"h{i}", amount=100 + i)).id)
            await transfer(client, other, f"o{i}")
        page = await client.v1.transfers.list_async({"destination": host, "limit": 2})
        assert (page.object, page.url, page.has_more) == ("list", "/v1/transfers", True)
        assert [t.id for t in page.data] == [ids[4], ids[3]]

        before = len(standin.requests)
        assert [t.id async for t in page.auto_paging_iter()] == ids[::-1]
        paging = standin.requests[before:]
        assert [r.params.get("starting_after") for r in paging] == [ids[3], ids[1]]
        assert all(r.params["destination"] == host for r in paging)

        everything = await client.v1.transfers.list_async({"limit": 100})
        assert len(everything.data) == 10
        assert not everything.has_more
        recent = await client.v1.transfers.list_async(
            {"destination": host, "created": {"gte": NOW + 180}}
        )
        assert [t.id for t in recent.data] == [ids[4], ids[3]]
        earlier = await client.v1.transfers.list_async(
            {"destination": host, "ending_before": ids[1], "limit": 2}
        )
        assert [t.id for t in earlier.data] == [ids[3], ids[2]]
        with pytest.raises(stripe.InvalidRequestError) as unknown:
            await client.v1.transfers.list_async({"starting_after": "tr_nope"})
        assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")
        with pytest.raises(stripe.InvalidRequestError) as missing:
            await client.v1.transfers.retrieve_async("tr_nope")
        assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


class TestReversals:
    async def test_reversals_through_the_api(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account_id = await onboarded(client, standin)
        made = await transfer(client, account_id, "payout-31", amount=1500)
        standin.now = NOW + 60
        first = await client.v1.transfers.reversals.create_async(
            made.id,
            {"amount": 500, "metadata": {"reason": "refund 12"}},
            options={"idempotency_key": "reverse-31-1"},
        )
        assert first.id.startswith("trr_")
        assert (first.object, first.amount, first.currency, first.transfer) == (
            "transfer_reversal",
            500,
            "eur",
            made.id,
        )
        assert first.created == NOW + 60
        assert first.metadata is not None
        assert first.metadata.to_dict() == {"reason": "refund 12"}
        again = await client.v1.transfers.reversals.create_async(
            made.id,
            {"amount": 500, "metadata": {"reason": "refund 12"}},
            options={"idempotency_key": "reverse-31-1"},
        )
        assert again.id == first.id  # replayed: one reversal
        fetched = await client.v1.transfers.retrieve_async(made.id)
        assert (fetched.amount_reversed, fetched.reversed) == (500, False)
        assert [r.id for r in fetched.reversals.data] == [first.id]
        [reversed_event] = standin.events_of("transfer.reversed")
        assert reversed_event["data"]["object"]["amount_reversed"] == 500
        assert reversed_event["data"]["previous_attributes"] == {"amount_reversed": 0}
        assert reversed_event["request"]["idempotency_key"] == "reverse-31-1"

        rest = await client.v1.transfers.reversals.create_async(made.id)
        assert rest.amount == 1000
        fetched = await client.v1.transfers.retrieve_async(made.id)
        assert (fetched.amount_reversed, fetched.reversed) == (1500, True)
        assert fetched.reversals.total_count == 2  # type: ignore[attr-defined]
        assert [r.id for r in fetched.reversals.data] == [rest.id, first.id]
        assert standin.platform_balance["eur"] == PLATFORM_BALANCE

        listed = await client.v1.transfers.reversals.list_async(made.id, {"limit": 1})
        assert [r.id for r in listed.data] == [rest.id]
        assert [r.id async for r in listed.auto_paging_iter()] == [rest.id, first.id]

        with pytest.raises(stripe.InvalidRequestError, match="fully reversed") as refused:
            await client.v1.transfers.reversals.create_async(made.id, {"amount": 1})
        assert (refused.value.http_status, refused.value.param) == (400, "amount")
        with pytest.raises(stripe.InvalidRequestError) as unknown:
            await client.v1.transfers.reversals.create_async("tr_nope")
        assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")

    async def test_more_than_is_left_is_refused(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account_id = await onboarded(client, standin)
        made = await transfer(client, account_id, "payout-31", amount=1500)
        with pytest.raises(stripe.InvalidRequestError, match="more than the 1500 left"):
            await client.v1.transfers.reversals.create_async(made.id, {"amount": 1501})
        assert standin.transfer(made.id)["amount_reversed"] == 0

    async def test_a_reversal_outside_the_api_produces_transfer_reversed(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account_id = await onboarded(client, standin)
        made = await transfer(client, account_id, "payout-31", amount=1500)
        standin.now = NOW + 3600
        event = standin.reverse_transfer(made.id, 400)
        assert event["type"] == "transfer.reversed"
        assert "account" not in event
        assert event["request"] == {"id": None, "idempotency_key": None}
        obj = event["data"]["object"]
        assert (obj["object"], obj["id"], obj["amount_reversed"], obj["reversed"]) == (
            "transfer",
            made.id,
            400,
            False,
        )
        assert obj["reversals"]["data"][0]["amount"] == 400
        assert event["data"]["previous_attributes"] == {"amount_reversed": 0}
        whole = standin.reverse_transfer(made.id)
        assert whole["data"]["object"]["reversed"] is True
        assert whole["data"]["previous_attributes"] == {"amount_reversed": 400, "reversed": False}
        with pytest.raises(ValueError, match="fully reversed"):
            standin.reverse_transfer(made.id)
        assert event["data"]["object"]["amount_reversed"] == 400  # events are snapshots


class TestConnectWebhooks:
    async def test_events_verify_with_the_secret_of_their_endpoint(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        account = await express(client)
        updated = standin.onboard(account.id)
        body, headers = standin.signed(updated)  # Connect endpoint: CONNECT_WEBHOOK_SECRET
        event = stripe.Webhook.construct_event(
            body, headers["Stripe-Signature"], CONNECT_WEBHOOK_SECRET
        )
        assert (event.type, event.account) == ("account.updated", account.id)
        obj = event.data.object
        assert isinstance(obj, stripe.Account)
        assert (obj.id, obj.payouts_enabled) == (account.id, True)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, headers["Stripe-Signature"], WEBHOOK_SECRET)

        made = await transfer(client, account.id, "payout-31")
        [created] = standin.events_of("transfer.created")
        body, headers = standin.signed(created)  # the platform's endpoint: WEBHOOK_SECRET
        event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], WEBHOOK_SECRET)
        assert event.type == "transfer.created"
        assert "account" not in event
        assert isinstance(event.data.object, stripe.Transfer)
        assert event.data.object.id == made.id
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(
                body, headers["Stripe-Signature"], CONNECT_WEBHOOK_SECRET
            )
        # an explicit secret still wins (one endpoint for both, say)
        _, one = standin.signed(updated, secret=WEBHOOK_SECRET)
        assert stripe.Webhook.construct_event(
            standin.signed(updated, secret=WEBHOOK_SECRET)[0], one["Stripe-Signature"],
            WEBHOOK_SECRET,
        ).id == updated["id"]  # fmt: skip

    async def test_deliver_to_a_platform_and_a_connect_endpoint(
        self, client: stripe.StripeClient, standin: StripeStandin
    ) -> None:
        received: list[tuple[str, stripe.Event]] = []

        def receiver(name: str, secret: str) -> Route:
            async def webhook(request: Request) -> JSONResponse:
                try:
                    event = stripe.Webhook.construct_event(
                        await request.body(), request.headers.get("stripe-signature"), secret
                    )
                except stripe.SignatureVerificationError:
                    return JSONResponse({"error": "bad signature"}, status_code=400)
                received.append((name, event))
                return JSONResponse({"received": True})

            return Route(f"/v1/webhooks/{name}", webhook, methods=["POST"])

        app = Starlette(routes=[receiver("stripe", WEBHOOK_SECRET),
                                receiver("stripe-connect", CONNECT_WEBHOOK_SECRET)])  # fmt: skip
        account_id = await onboarded(client, standin)
        made = await transfer(client, account_id, "payout-31")
        reversed_event = standin.reverse_transfer(made.id)
        restricted = standin.restrict(account_id)
        [created] = standin.events_of("transfer.created")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as asgi:
            statuses = [
                (await standin.deliver(created, "/v1/webhooks/stripe", client=asgi)).status_code,
                (await standin.deliver(reversed_event, "/v1/webhooks/stripe", client=asgi))
                .status_code,
                (await standin.deliver(restricted, "/v1/webhooks/stripe-connect", client=asgi))
                .status_code,
                # the wrong endpoint's secret: refused
                (await standin.deliver(restricted, "/v1/webhooks/stripe", client=asgi))
                .status_code,
            ]  # fmt: skip
        assert statuses == [200, 200, 200, 400]
        assert [(name, e.type) for name, e in received] == [
            ("stripe", "transfer.created"),
            ("stripe", "transfer.reversed"),
            ("stripe-connect", "account.updated"),
        ]
        assert received[2][1].account == account_id
