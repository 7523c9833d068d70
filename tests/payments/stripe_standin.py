"""A Stripe stand-in for tests: speaks what api.stripe.com speaks to stripe-python.

Point the real ``stripe`` package at it (``base_addresses={"api": standin.url}``). It serves
form-encoded v1 requests as stripe-python sends them, checks ``Authorization: Bearer
<SECRET_KEY>``, answers with Stripe's object and list shapes and Stripe's error shape
(``{"error": {"type", "message", "code", "param"}}``), and keeps Stripe's idempotency rules
for POSTs: the first result of a key is saved once the endpoint starts executing (parameter
validation failures are not saved), the same key with the same parameters replays it with
``Idempotent-Replayed: true``, the same key with other parameters is a 400
``idempotency_error``.

What a customer (or Stripe itself) does happens through methods: ``complete``, ``expire``,
``refund``, ``dispute``… Each changes the objects and returns the Stripe event it produced;
``signed``/``deliver`` send it as Stripe sends webhooks (``Stripe-Signature: t=…,v1=…``).
Every request is recorded; faults can be injected per route.

Stripe Connect (Express payouts): accounts, onboarding links, transfers from the platform's
balance (``platform_balance``, per currency) and their reversals. ``onboard``/``restrict``
change an account as Stripe's hosted onboarding or a review would and return the
``account.updated`` event, which, like every event about a connected account, carries the
account's id at its top level (``"account": "acct_…"``) and is delivered to the platform's
*Connect* endpoint: ``signed``/``deliver`` sign such events with ``CONNECT_WEBHOOK_SECRET``
unless told otherwise. Transfers are the platform's own objects: ``transfer.created`` (stored
in ``events`` when the API makes one) and ``transfer.reversed`` go to the platform's account
endpoint, signed with ``WEBHOOK_SECRET``. A refusal made once the endpoint ran (a destination
without an active ``transfers`` capability, ``balance_insufficient``, a reversal of more than is
left) is saved under the idempotency key and replayed, as Stripe saves a failed result;
malformed parameters and unknown ids are not.

Served routes (the names ``fail`` takes):
``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions``,
``GET /v1/checkout/sessions/{id}``, ``POST /v1/checkout/sessions/{id}/expire``,
``GET /v1/payment_intents/{id}``, ``GET /v1/charges/{id}``, ``GET /v1/events/{id}``,
``POST /v1/accounts``, ``GET /v1/accounts/{id}``, ``POST /v1/account_links``,
``POST /v1/transfers``, ``GET /v1/transfers``, ``GET /v1/transfers/{id}``,
``POST /v1/transfers/{id}/reversals``, ``GET /v1/transfers/{id}/reversals``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import string
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.loopback import serving

SECRET_KEY = "sk_test_callmeter_standin"
WEBHOOK_SECRET = "whsec_callmeter_standin"
CONNECT_WEBHOOK_SECRET = "whsec_callmeter_connect"  # the platform's Connect endpoint
API_VERSION: str = stripe.api_version  # the version stripe 16.1.0 pins ("2026-10-28.endive")
DAY = 86_400
PLATFORM_BALANCE = 10**12  # the platform's available balance in a currency nobody set
ACCOUNT_LINK_TTL = 300  # Stripe's account links expire five minutes after creation

Json = dict[str, Any]


class StripeApiError(Exception):
    """An error answer in Stripe's shape."""

    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, executed: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.type, self.message, self.code, self.param = (
            status,
            type_,
            message,
            code,
            param,
        )
        # True: the endpoint had started executing, so Stripe saves this failure under the
        # idempotency key and replays it; False (validation): nothing is saved.
        self.executed = executed

    def body(self) -> Json:
        error: Json = {"type": self.type, "message": self.message, "code": self.code}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def _missing(param: str) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", f"Missing required param: {param}.",
                          code="parameter_missing", param=param)  # fmt: skip


def _invalid(param: str, message: str, code: str = "parameter_invalid") -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message, code=code, param=param)


def _no_such(kind: str, object_id: str, param: str, status: int = 404) -> StripeApiError:
    return StripeApiError(status, "invalid_request_error", f"No such {kind}: '{object_id}'",
                          code="resource_missing", param=param)  # fmt: skip


def _unknown_keys(params: Json, known: frozenset[str], not_served: frozenset[str] = frozenset()
                  ) -> None:  # fmt: skip
    for name in sorted(set(params) - known):
        if name in not_served:
            raise _invalid(name, f"The stand-in does not serve {name}")
        raise _invalid(name, f"Received unknown parameter: {name}", "parameter_unknown")


def _redacted(api_key: str) -> str:
    return f"{api_key[:8]}{'*' * max(len(api_key) - 12, 0)}{api_key[-4:]}"


# --- form decoding (the inverse of stripe-python's _api_encode) ------------------------------
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_form(pairs: Iterable[tuple[str, str]]) -> Json:
    """``a[b][0][c]=v`` pairs to nested dicts; dicts keyed 0, 1, 2… become lists."""
    root: Json = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise _invalid(key, f"Invalid parameter name: {key}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _invalid(key, f"Invalid parameter nesting: {key}")
            node = child
        node[parts[-1]] = value
    decoded: Json = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def _int(params: Json, name: str, *, minimum: int | None = None, label: str = "") -> int:
    raw = params.get(name)
    label = label or name
    if raw is None or raw == "":
        raise _missing(label)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _invalid(label, f"Invalid integer: {raw}", "parameter_invalid_integer") from None
    if minimum is not None and value < minimum:
        raise _invalid(label, f"Invalid {label}: must be at least {minimum}")
    return value


def _str_map(params: Json, name: str) -> dict[str, str]:
    raw = params.get(name, {})
    if raw == "":
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _invalid(name, f"Invalid object: {name} must be a hash of strings")
    return dict(raw)


_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


# --- the stand-in --------------------------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str
    params: Json
    idempotency_key: str | None
    status: int = 0
    replayed: bool = False


@dataclass
class Fault:
    times: int
    status: int
    after: bool  # True: the request runs (and its result is saved), only the answer is lost


@dataclass
class _Saved:
    method: str
    path: str
    params: Json
    status: int
    body: Json


CREATE_KEYS = frozenset({
    "mode", "line_items", "success_url", "cancel_url", "client_reference_id", "metadata",
    "payment_intent_data", "expires_at", "customer_email", "payment_method_types", "locale",
})  # fmt: skip
LIST_KEYS = frozenset(
    {"status", "created", "payment_intent", "limit", "starting_after", "ending_before"}
)
CREATED_OPS = {
    "gt": int.__gt__,
    "gte": int.__ge__,
    "lt": int.__lt__,
    "lte": int.__le__,
}
ACCOUNT_KEYS = frozenset({
    "type", "country", "email", "capabilities", "metadata", "business_type",
    "business_profile", "default_currency", "tos_acceptance",
})  # fmt: skip
ACCOUNT_NOT_SERVED = frozenset({
    "account_token", "company", "controller", "documents", "external_account", "groups",
    "individual", "settings",
})  # fmt: skip
BUSINESS_TYPES = frozenset({"individual", "company", "non_profit", "government_entity"})
ACCOUNT_LINK_KEYS = frozenset(
    {"account", "type", "refresh_url", "return_url", "collect", "collection_options"}
)
TRANSFER_KEYS = frozenset(
    {"amount", "currency", "destination", "metadata", "description", "transfer_group"}
)
TRANSFER_NOT_SERVED = frozenset({"source_transaction", "source_type"})
TRANSFER_LIST_KEYS = frozenset(
    {"destination", "transfer_group", "created", "limit", "starting_after", "ending_before"}
)
REVERSAL_KEYS = frozenset({"amount", "description", "metadata"})
REVERSAL_NOT_SERVED = frozenset({"refund_application_fee"})
REVERSAL_LIST_KEYS = frozenset({"limit", "starting_after", "ending_before"})
# What Stripe asks of an Express account (an individual) before its onboarding.
EXPRESS_DUE = (
    "business_profile.mcc", "business_profile.url", "external_account",
    "individual.dob.day", "individual.dob.month", "individual.dob.year", "individual.email",
    "individual.first_name", "individual.last_name", "individual.phone",
    "tos_acceptance.date", "tos_acceptance.ip",
)  # fmt: skip
COUNTRY_CURRENCY = {
    "US": "usd", "GB": "gbp", "CH": "chf", "CA": "cad", "AU": "aud", "JP": "jpy",
    "SE": "sek", "DK": "dkk", "NO": "nok", "PL": "pln",
}  # fmt: skip  # the euro area (and anything else) defaults to eur
TRANSFERS_REFUSED = (
    "Your destination account needs to have at least one of the following capabilities "
    "enabled: transfers, crypto_transfers, legacy_payments"
)
BALANCE_INSUFFICIENT = (
    "You have insufficient available funds in your Stripe account. Try adding funds directly "
    "to your available balance by creating Charges using the 4000000000000077 test card. See: "
    "https://stripe.com/docs/testing#available-balance"
)


@dataclass
class StripeStandin:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, Json] = field(default_factory=dict)
    payment_intents: dict[str, Json] = field(default_factory=dict)
    charges: dict[str, Json] = field(default_factory=dict)
    disputes: dict[str, Json] = field(default_factory=dict)  # by dispute id
    events: dict[str, Json] = field(default_factory=dict)
    # Connect
    accounts: dict[str, Json] = field(default_factory=dict)
    account_links: dict[str, Json] = field(default_factory=dict)  # by url, with "_account" etc.
    transfers: dict[str, Json] = field(default_factory=dict)
    reversals: dict[str, Json] = field(default_factory=dict)  # by reversal id
    # available balance per currency; transfers take from it, reversals give back
    platform_balance: dict[str, int] = field(
        default_factory=lambda: defaultdict(lambda: PLATFORM_BALANCE)
    )
    platform_country: str = "US"  # an account created without `country` gets this one
    # False: like a platform without Stripe's approval, refuse accounts requesting `transfers`
    # without `card_payments`
    transfers_only_allowed: bool = True
    now: int | None = None  # unix seconds for `created` and expiry checks; None = time.time()
    failures: dict[str, Fault] = field(default_factory=dict)
    _saved: dict[tuple[str, str], _Saved] = field(default_factory=dict)
    _order: Any = field(default_factory=itertools.count)
    _rank: dict[str, int] = field(default_factory=dict)

    def clock(self) -> int:
        return int(time.time()) if self.now is None else self.now

    # --- what tests do -------------------------------------------------------------------
    def forget_idempotency_keys(self) -> None:
        """What Stripe does to a key after about 24 hours: a request with it runs anew."""
        self._saved.clear()

    def fail(self, route: str, times: int = 1, status: int = 500, *, after: bool = False) -> None:
        """The next ``times`` requests to ``route`` (e.g. "POST /v1/checkout/sessions") are
        answered with ``status``. By default the answer comes before the request runs, so a
        retry with the same idempotency key runs it once. With ``after=True`` the request runs
        and its result is saved under its idempotency key, only the answer is lost: a retry
        with the same key gets the saved result replayed."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {sorted(ROUTES)}")
        self.failures[route] = Fault(times, status, after)

    def calls_to(self, route: str) -> list[Recorded]:
        method, _, template = route.partition(" ")
        pattern = re.compile("^" + re.sub(r"\\\{id\\\}", "[^/]+", re.escape(template)) + "$")
        return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    def session(self, session_id: str) -> Json:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise LookupError(f"no checkout session {session_id}") from None

    def charge_of(self, session_id: str) -> Json:
        intent = self.session(session_id)["payment_intent"]
        if intent is None:
            raise ValueError(f"checkout session {session_id} has no payment yet")
        charge_id = self.payment_intents[intent]["latest_charge"]
        return self.charges[charge_id]

    def complete(self, session_id: str, *, paid: bool = True, async_payment: bool = False) -> Json:
        """The customer finishes Checkout. Paid (card): the session is complete and paid, with
        a succeeded PaymentIntent and Charge for amount_total. ``async_payment=True`` (or
        ``paid=False``): complete but ``payment_status`` unpaid, the PaymentIntent processing
        and the Charge pending, until ``async_succeeded`` or ``async_failed``."""
        session = self.session(session_id)
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
        paid = paid and not async_payment
        now = self.clock()
        intent_id, charge_id = _new_id("pi_"), _new_id("ch_")
        amount, currency = session["amount_total"], session["currency"]
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if paid else 0,
            "amount_refunded": 0,
            "balance_transaction": None,
            "captured": paid,
            "created": now,
            "currency": currency,
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "paid": paid,
            "payment_intent": intent_id,
            "refunded": False,
            "status": "succeeded" if paid else "pending",
        }
        self.payment_intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount if paid else 0,
            "canceled_at": None,
            "created": now,
            "currency": currency,
            "customer": None,
            "description": None,
            "latest_charge": charge_id,
            "livemode": False,
            "metadata": dict(session["_payment_intent_metadata"]),
            "payment_method_types": ["card"],
            "status": "succeeded" if paid else "processing",
        }
        session.update(
            status="complete",
            payment_status="paid" if paid else "unpaid",
            payment_intent=intent_id,
            url=None,
            customer_details={
                "email": session["customer_email"] or "customer@example.com",
                "name": None,
                "phone": None,
                "address": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
        )
        return self._event("checkout.session.completed", session)

    def async_succeeded(self, session_id: str) -> Json:
        session, intent, charge = self._awaiting_payment(session_id)
        intent.update(status="succeeded", amount_received=intent["amount"])
        charge.update(status="succeeded", paid=True, captured=True,
                      amount_captured=charge["amount"])  # fmt: skip
        session["payment_status"] = "paid"
        return self._event("checkout.session.async_payment_succeeded", session)

    def async_failed(self, session_id: str) -> Json:
        session, intent, charge = self._awaiting_payment(session_id)
        intent["status"] = "requires_payment_method"
        charge.update(status="failed", failure_code="generic_decline",
                      failure_message="The payment failed.")  # fmt: skip
        return self._event("checkout.session.async_payment_failed", session)

    def _awaiting_payment(self, session_id: str) -> tuple[Json, Json, Json]:
        session = self.session(session_id)
        if session["status"] != "complete" or session["payment_status"] != "unpaid":
            raise ValueError(f"checkout session {session_id} is not awaiting an async payment")
        intent = self.payment_intents[session["payment_intent"]]
        if intent["status"] != "processing":
            raise ValueError(f"payment of {session_id} already settled: {intent['status']}")
        return session, intent, self.charges[intent["latest_charge"]]

    def expire(self, session_id: str) -> Json:
        session = self.session(session_id)
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
        session.update(status="expired", url=None)
        return self._event("checkout.session.expired", session)

    def refund(self, session_id: str, amount: int) -> Json:
        """A refund (from the Dashboard, say) of ``amount`` more; cumulative on the charge."""
        charge = self.charge_of(session_id)
        if not charge["paid"]:
            raise ValueError(f"the charge of {session_id} is not paid")
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            raise ValueError(
                f"cannot refund {amount}: {charge['amount_refunded']} of "
                f"{charge['amount']} already refunded"
            )
        before = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        changed = {k: v for k, v in before.items() if charge[k] != v}
        return self._event("charge.refunded", charge, previous_attributes=changed)

    def dispute(self, session_id: str, *, amount: int | None = None,
                reason: str = "fraudulent") -> Json:  # fmt: skip
        charge = self.charge_of(session_id)
        if self._dispute_of(charge) is not None:
            raise ValueError(f"the charge of {session_id} is already disputed")
        dispute_id = _new_id("dp_")
        self.disputes[dispute_id] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": charge["amount"] if amount is None else amount,
            "balance_transactions": [],
            "charge": charge["id"],
            "created": self.clock(),
            "currency": charge["currency"],
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "needs_response",
        }
        charge["disputed"] = True
        return self._event("charge.dispute.created", self.disputes[dispute_id])

    def close_dispute(self, session_id: str, won: bool) -> Json:
        dispute = self._dispute_of(self.charge_of(session_id))
        if dispute is None or dispute["status"] in ("won", "lost"):
            raise ValueError(f"the charge of {session_id} has no open dispute")
        before = dispute["status"]
        dispute["status"] = "won" if won else "lost"
        return self._event("charge.dispute.closed", dispute,
                           previous_attributes={"status": before})  # fmt: skip

    def _dispute_of(self, charge: Json) -> Json | None:
        return next((d for d in self.disputes.values() if d["charge"] == charge["id"]), None)

    # --- Connect: what the connected account's owner, Stripe or the Dashboard does ----------
    def account(self, account_id: str) -> Json:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise LookupError(f"no connected account {account_id}") from None

    def transfer(self, transfer_id: str) -> Json:
        try:
            return self.transfers[transfer_id]
        except KeyError:
            raise LookupError(f"no transfer {transfer_id}") from None

    def events_of(self, type_: str, object_id: str | None = None) -> list[Json]:
        """The stored events of a type (of one object, if given), oldest first."""
        return [e for e in self.events.values() if e["type"] == type_
                and (object_id is None or e["data"]["object"].get("id") == object_id)]  # fmt: skip

    def onboard(self, account_id: str, *, payouts_enabled: bool = True) -> Json:
        """The account's owner finishes Stripe's hosted onboarding: details submitted, nothing
        due. ``payouts_enabled=True``: Stripe verified them, every requested capability is
        active and payouts are enabled. ``False``: verification is pending, the capabilities
        are ``pending`` and payouts (and transfers) stay off. Returns ``account.updated``."""
        account = self.account(account_id)
        before = _public(account)
        status = "active" if payouts_enabled else "pending"
        capabilities = {name: status for name in account["capabilities"]}
        account.update(
            details_submitted=True,
            payouts_enabled=payouts_enabled,
            charges_enabled=capabilities.get("card_payments") == "active",
            capabilities=capabilities,
            requirements=_requirements(
                pending=() if payouts_enabled else ("individual.verification.document",),
                disabled_reason=None if payouts_enabled else "requirements.pending_verification",
            ),
            tos_acceptance={"date": account["tos_acceptance"]["date"] or self.clock(),
                            "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (stand-in)",
                            **_only(account["tos_acceptance"], "service_agreement")},
        )  # fmt: skip
        return self._account_updated(account, before)

    def restrict(self, account_id: str) -> Json:
        """Stripe restricts the account (information past due after a review): payouts and
        charges off, every capability inactive. Returns ``account.updated``."""
        account = self.account(account_id)
        before = _public(account)
        due = ("individual.verification.document",)
        account.update(
            payouts_enabled=False,
            charges_enabled=False,
            capabilities={name: "inactive" for name in account["capabilities"]},
            requirements=_requirements(currently_due=due, past_due=due,
                                       disabled_reason="requirements.past_due"),
        )  # fmt: skip
        return self._account_updated(account, before)

    def _account_updated(self, account: Json, before: Json) -> Json:
        changed = _previous(before, _public(account))
        if not changed:
            raise ValueError(f"account {account['id']} is already in that state")
        return self._event("account.updated", account, previous_attributes=changed,
                           account=account["id"])  # fmt: skip

    def reverse_transfer(self, transfer_id: str, amount: int | None = None) -> Json:
        """A reversal of ``amount`` (all that is left by default) made outside the API (the
        Dashboard, say). Returns ``transfer.reversed``, whose object is the transfer."""
        transfer = self.transfer(transfer_id)
        try:
            _, event = self._reverse(transfer, amount, {}, None)
        except StripeApiError as refused:
            raise ValueError(refused.message) from None
        return event

    def _reverse(self, transfer: Json, amount: int | None, metadata: dict[str, str],
                 request: Json | None) -> tuple[Json, Json]:  # fmt: skip
        left = transfer["amount"] - transfer["amount_reversed"]
        if left == 0:
            raise StripeApiError(400, "invalid_request_error",
                                 f"Transfer {transfer['id']} has already been fully reversed.",
                                 param="amount", executed=True)  # fmt: skip
        amount = left if amount is None else amount
        if amount > left:
            raise StripeApiError(400, "invalid_request_error",
                                 f"You cannot reverse more than the {left} left of transfer "
                                 f"{transfer['id']} (requested {amount}).",
                                 param="amount", executed=True)  # fmt: skip
        reversal_id = _new_id("trr_")
        reversal: Json = {
            "id": reversal_id,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": _new_id("txn_"),
            "created": self.clock(),
            "currency": transfer["currency"],
            "destination_payment_refund": _new_id("pyr_"),
            "metadata": metadata,
            "source_refund": None,
            "transfer": transfer["id"],
        }
        self.reversals[reversal_id] = reversal
        self._rank[reversal_id] = next(self._order)
        before = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        listed = transfer["reversals"]
        listed["total_count"] += 1
        listed["data"] = [_public(reversal), *listed["data"]][:10]
        listed["has_more"] = listed["total_count"] > 10
        self.platform_balance[transfer["currency"]] += amount
        changed = {k: v for k, v in before.items() if transfer[k] != v}
        event = self._event("transfer.reversed", transfer, previous_attributes=changed,
                            request=request)  # fmt: skip
        return reversal, event

    def _event(self, type_: str, obj: Json, *, previous_attributes: Json | None = None,
               account: str | None = None, request: Json | None = None) -> Json:  # fmt: skip
        """``account``: the connected account the event is about (a Connect event); ``request``:
        the API request that caused it ({"id", "idempotency_key"})."""
        data: Json = {"object": _public(obj)}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        event: Json = {"id": _new_id("evt_"), "object": "event"}
        if account is not None:
            event["account"] = account
        event.update({
            "api_version": API_VERSION,
            "created": self.clock(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": request or {"id": None, "idempotency_key": None},
            "type": type_,
        })  # fmt: skip
        self.events[event["id"]] = event
        return event

    # --- webhooks ------------------------------------------------------------------------
    def sign(self, payload: bytes, *, secret: str = WEBHOOK_SECRET,
             timestamp: int | None = None) -> str:  # fmt: skip
        """The Stripe-Signature header: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>``.
        The timestamp is the signing moment (real time by default, not ``now``): Stripe signs
        each delivery attempt afresh, whenever the event was created."""
        ts = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256)
        return f"t={ts},v1={mac.hexdigest()}"

    def signed(self, event: Json, *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:  # fmt: skip
        """The body and headers of a delivery. ``secret`` by default is the one of the endpoint
        Stripe delivers the event to: ``CONNECT_WEBHOOK_SECRET`` for an event about a connected
        account (it has a top-level ``account``), ``WEBHOOK_SECRET`` otherwise."""
        if secret is None:
            secret = CONNECT_WEBHOOK_SECRET if event.get("account") else WEBHOOK_SECRET
        body = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": self.sign(body, secret=secret, timestamp=timestamp),
        }
        return body, headers

    async def deliver(self, event: Json, url: str, *, client: httpx.AsyncClient | None = None,
                      secret: str | None = None,
                      timestamp: int | None = None) -> httpx.Response:  # fmt: skip
        """POST the event to ``url`` as Stripe does (``url`` may be relative to the client's
        base_url, e.g. an ASGITransport client of the app); ``secret`` as for ``signed``."""
        body, headers = self.signed(event, secret=secret, timestamp=timestamp)
        if client is not None:
            return await client.post(url, content=body, headers=headers)
        async with httpx.AsyncClient() as own:
            return await own.post(url, content=body, headers=headers)

    # --- the server ----------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        route: str = request.scope["route_name"]
        method = request.method
        if method == "POST":
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        else:
            pairs = parse_qsl(request.url.query, keep_blank_values=True)
        key = request.headers.get("idempotency-key")
        recorded = Recorded(method, request.url.path, {}, key)
        self.requests.append(recorded)
        request.state.request_id = request_id = _new_id("req_")
        try:
            recorded.params = decode_form(pairs)
            response = self._answer(request, route, recorded)
        except StripeApiError as exc:
            response = JSONResponse(exc.body(), status_code=exc.status)
        recorded.status = response.status_code
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = request.headers.get("stripe-version", API_VERSION)
        if key is not None:
            response.headers["Idempotency-Key"] = key
        return response

    def _answer(self, request: Request, route: str, recorded: Recorded) -> Response:
        api_key = self._authenticate(request.headers.get("authorization", ""))
        fault = self.failures.get(route)
        injected = None
        if fault is not None and fault.times > 0:
            fault.times -= 1
            injected = _injected(fault.status)
            if not fault.after:
                raise injected  # before anything runs or is saved
        run = ROUTES[route]
        key = recorded.idempotency_key if request.method == "POST" else None
        saved = self._saved.get((api_key, key)) if key else None
        if saved is not None:
            if (saved.method, saved.path, saved.params) != (
                request.method,
                recorded.path,
                recorded.params,
            ):
                raise StripeApiError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                )
            recorded.replayed = True
            response = JSONResponse(saved.body, status_code=saved.status)
            response.headers["Idempotent-Replayed"] = "true"
        else:
            try:
                body = run(self, request, recorded.params)  # validation errors raise: not saved
            except StripeApiError as refused:
                if not refused.executed:
                    raise
                if key:  # a failure once the endpoint ran is saved and replayed like a result
                    self._saved[(api_key, key)] = _Saved(
                        request.method, recorded.path, recorded.params, refused.status,
                        refused.body(),
                    )  # fmt: skip
                raise (injected or refused) from None
            if key:
                self._saved[(api_key, key)] = _Saved(
                    request.method, recorded.path, recorded.params, 200, body
                )
            response = JSONResponse(body)
        if injected is not None:
            raise injected  # after=True: the request ran and its result is saved; answer lost
        return response

    def _authenticate(self, header: str) -> str:
        if not header.startswith("Bearer "):
            raise StripeApiError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        api_key = header.removeprefix("Bearer ")
        if api_key != SECRET_KEY:
            raise StripeApiError(
                401,
                "invalid_request_error",
                f"Invalid API Key provided: {api_key[:8]}{'*' * max(len(api_key) - 12, 0)}"
                f"{api_key[-4:]}",
            )
        return api_key

    # --- endpoints -----------------------------------------------------------------------
    def create_session(self, request: Request, params: Json) -> Json:
        unknown = sorted(set(params) - CREATE_KEYS)
        if unknown:
            raise _invalid(unknown[0], f"Received unknown parameter: {unknown[0]}",
                           "parameter_unknown")  # fmt: skip
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode != "payment":
            raise _invalid("mode", f"The stand-in serves mode=payment only, not {mode!r}")
        items = params.get("line_items")
        if not items:
            raise _missing("line_items")
        if not isinstance(items, list):
            raise _invalid("line_items", "Invalid array")
        currencies, total = set(), 0
        for i, item in enumerate(items):
            at = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise _invalid(at, "Invalid object")
            if "price" in item:
                raise _invalid(f"{at}[price]", "The stand-in knows no Prices: use price_data")
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise _missing(f"{at}[price_data]")
            if not price.get("currency"):
                raise _missing(f"{at}[price_data][currency]")
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise _missing(f"{at}[price_data][product_data][name]")
            unit = _int(price, "unit_amount", minimum=0, label=f"{at}[price_data][unit_amount]")
            quantity = _int(item, "quantity", minimum=1, label=f"{at}[quantity]")
            currencies.add(price["currency"].lower())
            total += unit * quantity
        if len(currencies) > 1:
            raise _invalid("line_items", "All line items must use the same currency")
        now = self.clock()
        expires_at = now + DAY
        if "expires_at" in params:
            expires_at = _int(params, "expires_at")
            if not now + 1800 <= expires_at <= now + DAY:
                raise _invalid(
                    "expires_at",
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                    "after Checkout Session creation.",
                )
        intent_data = params.get("payment_intent_data", {})
        if not isinstance(intent_data, dict) or set(intent_data) - {"metadata"}:
            raise _invalid("payment_intent_data", "The stand-in takes payment_intent_data"
                           "[metadata] only")  # fmt: skip
        session_id = _new_id("cs_test_")
        session: Json = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currencies.pop(),
            "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "invoice": None,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": _str_map(params, "metadata"),
            "mode": "payment",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_status": "unpaid",
            "recovered_from": None,
            "setup_intent": None,
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted_page",
            "url": f"{self.url}/c/pay/{session_id}",
            "_payment_intent_metadata": _str_map(intent_data, "metadata"),
        }
        self.sessions[session_id] = session
        self._rank[session_id] = next(self._order)
        return _public(session)

    def retrieve_session(self, request: Request, params: Json) -> Json:
        session_id = request.path_params["id"]
        if session_id not in self.sessions:
            raise _no_such("checkout.session", session_id, "session")
        return _public(self.sessions[session_id])

    def expire_session(self, request: Request, params: Json) -> Json:
        session_id = request.path_params["id"]
        session = self.sessions.get(session_id)
        if session is None:
            raise _no_such("checkout.session", session_id, "session")
        if session["status"] != "open":
            raise _invalid("session", f"Only Checkout Sessions with a status in [\"open\"] can "
                           f"be expired. This Checkout Session has status \"{session['status']}\".",
                           "checkout_session_not_open")  # fmt: skip
        self.expire(session_id)
        return _public(session)

    def list_sessions(self, request: Request, params: Json) -> Json:
        unknown = sorted(set(params) - LIST_KEYS)
        if unknown:
            raise _invalid(unknown[0], f"Received unknown parameter: {unknown[0]}",
                           "parameter_unknown")  # fmt: skip
        limit = _limit(params)
        rows = self._newest_first(self.sessions.values())
        if "status" in params:
            rows = [s for s in rows if s["status"] == params["status"]]
        if "payment_intent" in params:
            rows = [s for s in rows if s["payment_intent"] == params["payment_intent"]]
        rows = _created_filter(rows, params)
        return _page(rows, limit, params, self.sessions, "checkout.session",
                     "/v1/checkout/sessions")  # fmt: skip

    def _newest_first(self, rows: Iterable[Json]) -> list[Json]:
        return sorted(rows, key=lambda r: (r["created"], self._rank[r["id"]]), reverse=True)

    def retrieve_payment_intent(self, request: Request, params: Json) -> Json:
        return self._retrieve(self.payment_intents, "payment_intent", request, "intent")

    def retrieve_charge(self, request: Request, params: Json) -> Json:
        return self._retrieve(self.charges, "charge", request, "charge")

    def retrieve_event(self, request: Request, params: Json) -> Json:
        return self._retrieve(self.events, "event", request, "id")

    def _retrieve(self, table: dict[str, Json], kind: str, request: Request, param: str) -> Json:
        object_id = request.path_params["id"]
        if object_id not in table:
            raise _no_such(kind, object_id, param)
        return _public(table[object_id])

    # --- Connect endpoints ---------------------------------------------------------------
    def create_account(self, request: Request, params: Json) -> Json:
        _unknown_keys(params, ACCOUNT_KEYS, ACCOUNT_NOT_SERVED)
        type_ = params.get("type")
        if not type_:
            raise _missing("type")
        if type_ not in ("custom", "express", "standard"):
            raise _invalid("type", "Invalid type: must be one of custom, express, or standard")
        if type_ != "express":
            raise _invalid("type", f"The stand-in serves type=express only, not {type_!r}")
        country = str(params.get("country") or self.platform_country).upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise _invalid("country", f"Invalid country: {country}", "country_unsupported")
        business_type = params.get("business_type") or None
        if business_type is not None and business_type not in BUSINESS_TYPES:
            raise _invalid("business_type", "Invalid business_type: must be one of company, "
                           "government_entity, individual, or non_profit")  # fmt: skip
        requested = _requested_capabilities(params)
        agreement = _str_map(params, "tos_acceptance").get("service_agreement")
        if agreement not in (None, "full", "recipient"):
            raise _invalid(
                "tos_acceptance[service_agreement]",
                "Invalid service_agreement: must be one of full or recipient",
            )
        if ("transfers" in requested and "card_payments" not in requested
                and agreement != "recipient" and not self.transfers_only_allowed):  # fmt: skip
            raise _invalid(
                "capabilities",
                "Your platform needs approval for accounts to have requested the `transfers` "
                "capability without the `card_payments` capability. If you would like to "
                "request transfers without card_payments, please contact us via "
                "https://support.stripe.com/contact.",
            )
        profile = _str_map(params, "business_profile")
        default_currency = str(params.get("default_currency") or "").lower()
        due = (*(() if business_type else ("business_type",)), *EXPRESS_DUE)
        account_id = _new_id("acct_")
        account: Json = {
            "id": account_id,
            "object": "account",
            "business_profile": {
                "annual_revenue": None,
                "estimated_worker_count": None,
                "mcc": None,
                "name": None,
                "product_description": None,
                "support_address": None,
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": None,
                **profile,
            },
            "business_type": business_type,
            "capabilities": {name: "inactive" for name in requested},
            "charges_enabled": False,
            "controller": {
                "fees": {"payer": "application_express"},
                "is_controller": True,
                "losses": {"payments": "application"},
                "requirement_collection": "stripe",
                "stripe_dashboard": {"type": "express"},
                "type": "application",
            },
            "country": country,
            "created": self.clock(),
            "default_currency": default_currency or COUNTRY_CURRENCY.get(country, "eur"),
            "details_submitted": False,
            "email": params.get("email") or None,
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            "future_requirements": _requirements(),
            "metadata": _str_map(params, "metadata"),
            "payouts_enabled": False,
            "requirements": _requirements(currently_due=due, past_due=due,
                                          disabled_reason="requirements.past_due"),
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None,
                               **({"service_agreement": agreement} if agreement else {})},
            "type": "express",
        }  # fmt: skip
        self.accounts[account_id] = account
        self._rank[account_id] = next(self._order)
        return _public(account)

    def retrieve_account(self, request: Request, params: Json) -> Json:
        account_id = request.path_params["id"]
        if account_id not in self.accounts:
            api_key = request.headers.get("authorization", "").removeprefix("Bearer ")
            raise StripeApiError(
                403,
                "invalid_request_error",
                f"The provided key '{_redacted(api_key)}' does not have access to account "
                f"'{account_id}' (or that account does not exist). Application access may have "
                "been revoked.",
                code="account_invalid",
            )
        return _public(self.accounts[account_id])

    def create_account_link(self, request: Request, params: Json) -> Json:
        _unknown_keys(params, ACCOUNT_LINK_KEYS)
        account_id = params.get("account")
        if not account_id:
            raise _missing("account")
        type_ = params.get("type")
        if not type_:
            raise _missing("type")
        if type_ not in ("account_onboarding", "account_update"):
            raise _invalid("type", "Invalid type: must be one of account_onboarding or "
                           "account_update")  # fmt: skip
        if account_id not in self.accounts:
            raise _no_such("account", account_id, "account", status=400)
        if type_ == "account_update":
            raise _invalid("type", "You can't create Account Links of type account_update for "
                           "accounts that have access to a Stripe-hosted Dashboard.")  # fmt: skip
        for name in ("refresh_url", "return_url"):
            if not params.get(name):
                raise _missing(name)
        now = self.clock()
        token = "".join(secrets.choice(_ALPHABET) for _ in range(12))
        link: Json = {
            "object": "account_link",
            "created": now,
            "expires_at": now + ACCOUNT_LINK_TTL,
            "url": f"{self.url}/connect/setup/e/{account_id}/{token}",
        }
        self.account_links[link["url"]] = {
            **link,
            "_account": account_id,
            "_type": type_,
            "_refresh_url": params["refresh_url"],
            "_return_url": params["return_url"],
        }
        return link

    def create_transfer(self, request: Request, params: Json) -> Json:
        _unknown_keys(params, TRANSFER_KEYS, TRANSFER_NOT_SERVED)
        amount = _int(params, "amount", minimum=1)
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise _missing("currency")
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise _invalid("currency", f"Invalid currency: {currency}")
        destination = params.get("destination")
        if not destination:
            raise _missing("destination")
        if destination not in self.accounts:
            raise _no_such("destination", destination, "destination", status=400)
        metadata = _str_map(params, "metadata")
        # the endpoint runs from here: its refusals are saved under the idempotency key
        if self.accounts[destination]["capabilities"].get("transfers") != "active":
            raise StripeApiError(400, "invalid_request_error", TRANSFERS_REFUSED,
                                 code="insufficient_capabilities_for_transfer",
                                 executed=True)  # fmt: skip
        if amount > self.platform_balance[currency]:
            raise StripeApiError(400, "invalid_request_error", BALANCE_INSUFFICIENT,
                                 code="balance_insufficient", executed=True)  # fmt: skip
        self.platform_balance[currency] -= amount
        transfer_id = _new_id("tr_")
        transfer: Json = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _new_id("txn_"),
            "created": self.clock(),
            "currency": currency,
            "description": params.get("description") or None,
            "destination": destination,
            "destination_payment": _new_id("py_"),
            "livemode": False,
            "metadata": metadata,
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": None,
            "source_type": "card",
            "transfer_group": params.get("transfer_group") or None,
        }
        self.transfers[transfer_id] = transfer
        self._rank[transfer_id] = next(self._order)
        self._event("transfer.created", transfer, request=_caused_by(request))
        return _public(transfer)

    def retrieve_transfer(self, request: Request, params: Json) -> Json:
        return self._retrieve(self.transfers, "transfer", request, "transfer")

    def list_transfers(self, request: Request, params: Json) -> Json:
        _unknown_keys(params, TRANSFER_LIST_KEYS)
        limit = _limit(params)
        rows = self._newest_first(self.transfers.values())
        for name in ("destination", "transfer_group"):
            if name in params:
                rows = [t for t in rows if t[name] == params[name]]
        rows = _created_filter(rows, params)
        return _page(rows, limit, params, self.transfers, "transfer", "/v1/transfers")

    def create_reversal(self, request: Request, params: Json) -> Json:
        transfer = self.transfers.get(request.path_params["id"])
        if transfer is None:
            raise _no_such("transfer", request.path_params["id"], "id")
        _unknown_keys(params, REVERSAL_KEYS, REVERSAL_NOT_SERVED)
        amount = _int(params, "amount", minimum=1) if "amount" in params else None
        metadata = _str_map(params, "metadata")
        reversal, _ = self._reverse(transfer, amount, metadata, _caused_by(request))
        return _public(reversal)

    def list_reversals(self, request: Request, params: Json) -> Json:
        transfer = self.transfers.get(request.path_params["id"])
        if transfer is None:
            raise _no_such("transfer", request.path_params["id"], "id")
        _unknown_keys(params, REVERSAL_LIST_KEYS)
        limit = _limit(params)
        rows = self._newest_first(
            r for r in self.reversals.values() if r["transfer"] == transfer["id"]
        )
        return _page(rows, limit, params, self.reversals, "transfer_reversal",
                     f"/v1/transfers/{transfer['id']}/reversals")  # fmt: skip


def _public(obj: Json) -> Json:
    """A snapshot of an object without the stand-in's private fields."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _limit(params: Json) -> int:
    limit = _int(params, "limit", minimum=1) if "limit" in params else 10
    if limit > 100:
        raise _invalid("limit", "Invalid limit: must be at most 100")
    return limit


def _created_filter(rows: list[Json], params: Json) -> list[Json]:
    created = params.get("created")
    if isinstance(created, dict):
        for op in created:
            if op not in CREATED_OPS:
                raise _invalid(f"created[{op}]", f"Received unknown parameter: created[{op}]",
                               "parameter_unknown")  # fmt: skip
            value = _int(created, op, label=f"created[{op}]")
            rows = [r for r in rows if CREATED_OPS[op](r["created"], value)]
    elif created is not None:
        value = _int(params, "created")
        rows = [r for r in rows if r["created"] == value]
    return rows


def _page(rows: list[Json], limit: int, params: Json, table: dict[str, Json], kind: str,
          url: str) -> Json:  # fmt: skip
    """One page of ``rows`` (newest first) after ``starting_after`` or before
    ``ending_before``, in Stripe's list shape."""
    ids = [r["id"] for r in rows]
    if params.get("starting_after"):
        cursor = params["starting_after"]
        if cursor not in table:
            raise _no_such(kind, cursor, "starting_after")
        rows = rows[ids.index(cursor) + 1 :] if cursor in ids else []
        page, has_more = rows[:limit], len(rows) > limit
    elif params.get("ending_before"):
        cursor = params["ending_before"]
        if cursor not in table:
            raise _no_such(kind, cursor, "ending_before")
        rows = rows[: ids.index(cursor)] if cursor in ids else []
        page, has_more = rows[-limit:], len(rows) > limit
    else:
        page, has_more = rows[:limit], len(rows) > limit
    return {"object": "list", "data": [_public(r) for r in page], "has_more": has_more, "url": url}


def _requested_capabilities(params: Json) -> list[str]:
    raw = params.get("capabilities", {})
    if raw == "":
        return []
    if not isinstance(raw, dict):
        raise _invalid("capabilities", "Invalid object: capabilities must be a hash")
    requested = []
    for name, ask in raw.items():
        if not isinstance(ask, dict) or set(ask) != {"requested"}:
            raise _missing(f"capabilities[{name}][requested]")
        if ask["requested"] not in ("true", "false"):
            raise _invalid(f"capabilities[{name}][requested]",
                           f"Invalid boolean: {ask['requested']}")  # fmt: skip
        if ask["requested"] == "true":
            requested.append(name)
    return requested


def _requirements(
    *,
    currently_due: Iterable[str] = (),
    past_due: Iterable[str] = (),
    pending: Iterable[str] = (),
    disabled_reason: str | None = None,
) -> Json:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(currently_due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(currently_due),
        "past_due": list(past_due),
        "pending_verification": list(pending),
    }


def _only(obj: Json, *keys: str) -> Json:
    return {k: obj[k] for k in keys if k in obj}


def _previous(before: Json, after: Json) -> Json:
    """Stripe's ``previous_attributes``: the old values of what changed, hashes recursed into,
    arrays whole."""
    changed: Json = {}
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed[key] = _previous(old, new)
        else:
            changed[key] = old
    return changed


def _caused_by(request: Request) -> Json:
    """An event's ``request``: the API request that caused it."""
    return {"id": request.state.request_id,
            "idempotency_key": request.headers.get("idempotency-key")}  # fmt: skip


def _injected(status: int) -> StripeApiError:
    if status == 429:
        return StripeApiError(429, "invalid_request_error", "Too many requests (injected).",
                              code="rate_limit")  # fmt: skip
    return StripeApiError(status, "api_error", "Injected failure of the Stripe stand-in.")


ROUTES: dict[str, Callable[[StripeStandin, Request, Json], Json]] = {
    "POST /v1/checkout/sessions": StripeStandin.create_session,
    "GET /v1/checkout/sessions": StripeStandin.list_sessions,
    "GET /v1/checkout/sessions/{id}": StripeStandin.retrieve_session,
    "POST /v1/checkout/sessions/{id}/expire": StripeStandin.expire_session,
    "GET /v1/payment_intents/{id}": StripeStandin.retrieve_payment_intent,
    "GET /v1/charges/{id}": StripeStandin.retrieve_charge,
    "GET /v1/events/{id}": StripeStandin.retrieve_event,
    "POST /v1/accounts": StripeStandin.create_account,
    "GET /v1/accounts/{id}": StripeStandin.retrieve_account,
    "POST /v1/account_links": StripeStandin.create_account_link,
    "POST /v1/transfers": StripeStandin.create_transfer,
    "GET /v1/transfers": StripeStandin.list_transfers,
    "GET /v1/transfers/{id}": StripeStandin.retrieve_transfer,
    "POST /v1/transfers/{id}/reversals": StripeStandin.create_reversal,
    "GET /v1/transfers/{id}/reversals": StripeStandin.list_reversals,
}


class NoBackoffHTTPXClient(stripe.HTTPXClient):
    """stripe.HTTPXClient whose retry backoff records the delay it would sleep instead of
    sleeping (0.5 s and more per retry), for tests that inject failures."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backoffs: list[float] = []

    async def sleep_async(self, secs: float) -> None:
        self.backoffs.append(secs)
        await asyncio.sleep(0)


@asynccontextmanager
async def running_stripe() -> AsyncIterator[StripeStandin]:
    standin = StripeStandin()

    def route(name: str) -> Route:
        method, _, path = name.partition(" ")

        async def endpoint(request: Request) -> Response:
            request.scope["route_name"] = name
            return await standin.handle(request)

        return Route(path, endpoint, methods=[method])

    app = Starlette(routes=[route(name) for name in ROUTES])
    async with serving(app) as url:
        standin.url = url
        yield standin
