"""Who collects the money: Stripe Checkout, or the built-in test provider.

Both sit behind :class:`PaymentProvider`. With ``CALLMETER_STRIPE_SECRET_KEY`` and
``CALLMETER_STRIPE_WEBHOOK_SECRET`` set it is Stripe, through the official ``stripe``
package (its async client over httpx; ``CALLMETER_STRIPE_API_BASE`` points it at a
stand-in). Without them it is :class:`TestProvider`: a local checkout page that completes,
fails or cancels on a click and then sends a webhook signed exactly as Stripe signs one, to
the same endpoint code — so the demo exercises the real fulfilment path. Production refuses
to start without Stripe keys (``config.Settings``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import stripe

from callmeter.config import Settings
from callmeter.errors import InvalidStripeWebhook, PaymentProviderUnavailable
from callmeter.kit.runtime import Runtime

TEST_SESSION_PREFIX = "cs_test_local_"
TEST_INTENT_PREFIX = "pi_test_local_"


@dataclass(frozen=True)
class CheckoutRequest:
    purchase_id: int
    product_name: str
    currency: str
    unit_amount: int
    success_url: str
    cancel_url: str
    expires_at: int  # unix seconds; fixed per purchase so a retried create is identical
    idempotency_key: str
    customer_reference: str


@dataclass(frozen=True)
class Checkout:
    session_id: str
    url: str


class PaymentProvider(Protocol):
    name: str

    async def create_checkout(self, request: CheckoutRequest) -> Checkout: ...

    async def checkout_of_payment_intent(self, payment_intent_id: str) -> str | None: ...

    def completed_sessions(self, since: datetime) -> AsyncIterator[dict[str, Any]]: ...

    def verify(self, body: bytes, signature: str | None) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def _verify(body: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event, if ``signature`` (the Stripe-Signature header) signs exactly ``body`` with
    ``secret`` within Stripe's default tolerance (300 s). An event's own ``created`` may be
    days old: Stripe retries for days, and each retry is signed anew."""
    if not signature:
        raise InvalidStripeWebhook("the Stripe-Signature header is missing")
    try:
        stripe.Webhook.construct_event(body, signature, secret)
        event = json.loads(body)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidStripeWebhook() from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise InvalidStripeWebhook("the body is not a Stripe event")
    return cast(dict[str, Any], event)


def purchase_id_in(metadata: object) -> int | None:
    """The purchase id our checkout put in an object's metadata, if it is there."""
    if not isinstance(metadata, dict):
        return None
    value = metadata.get("purchase_id")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


def stripe_id(value: object) -> str | None:
    """``value`` if it looks like a Stripe object id (``cs_…``, ``pi_…``, ``evt_…``)."""
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: Settings, http_client: stripe.HTTPXClient | None = None) -> None:
        if not (settings.stripe_secret_key and settings.stripe_webhook_secret):
            raise ValueError("Stripe needs a secret key and a webhook secret")
        self._webhook_secret = settings.stripe_webhook_secret
        self._connect_secret = settings.stripe_connect_webhook_secret
        self._http = http_client or stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=cast(Any, base or {}),
            http_client=self._http,
            max_network_retries=settings.stripe_max_network_retries,
        )

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.unit_amount,
                        "product_data": {"name": request.product_name},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": request.customer_reference,
            "metadata": {"purchase_id": str(request.purchase_id)},
            "payment_intent_data": {"metadata": {"purchase_id": str(request.purchase_id)}},
            "expires_at": request.expires_at,
        }
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                cast(Any, params), options={"idempotency_key": request.idempotency_key}
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(
                f"Stripe did not create the checkout: {exc.user_message or type(exc).__name__}"
            ) from exc
        if not session.url:
            raise PaymentProviderUnavailable("Stripe returned a checkout without a URL")
        return Checkout(session_id=session.id, url=session.url)

    async def checkout_of_payment_intent(self, payment_intent_id: str) -> str | None:
        """The Checkout Session that created a payment intent (None: not a checkout's).
        Its id, not the intent's metadata, ties a refund or a dispute to a purchase:
        another system sharing the Stripe account may use the same metadata."""
        try:
            page = await self._client.v1.checkout.sessions.list_async(
                {"payment_intent": payment_intent_id, "limit": 1}
            )
        except stripe.InvalidRequestError:
            return None
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable("Stripe did not answer") from exc
        return page.data[0].id if page.data else None

    async def completed_sessions(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        page = await self._client.v1.checkout.sessions.list_async(
            {"status": "complete", "created": {"gte": int(since.timestamp())}, "limit": 100}
        )
        async for session in page.auto_paging_iter():
            yield session.to_dict()

    def verify(self, body: bytes, signature: str | None) -> dict[str, Any]:
        """Signed by the account's endpoint secret, or by Connect's (account.updated and
        transfers of connected accounts come from a Connect endpoint)."""
        try:
            return _verify(body, signature, self._webhook_secret)
        except InvalidStripeWebhook:
            if not self._connect_secret:
                raise
            return _verify(body, signature, self._connect_secret)

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


class TestProvider:
    """The built-in test payment provider (no Stripe keys): a local checkout page whose
    buttons send Stripe-shaped events, signed with a key derived from the server's secret,
    through the same webhook code. It never talks to anyone and gives coins away: the
    settings refuse it in production."""

    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self, settings: Settings) -> None:
        digest = hashlib.sha256(f"callmeter-test-payments:{settings.secret_key}".encode())
        self.webhook_secret = f"whsec_local_{digest.hexdigest()[:32]}"

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        session_id = f"{TEST_SESSION_PREFIX}{request.purchase_id}_{secrets.token_hex(20)}"
        return Checkout(session_id=session_id, url=f"/test-checkout/{session_id}")

    async def checkout_of_payment_intent(self, payment_intent_id: str) -> str | None:
        return None  # its checkouts are never refunded or disputed

    async def completed_sessions(self, since: datetime) -> AsyncIterator[dict[str, Any]]:
        return  # its events are delivered in-process: nothing is ever missed
        yield {}

    def verify(self, body: bytes, signature: str | None) -> dict[str, Any]:
        return _verify(body, signature, self.webhook_secret)

    def sign(self, event: dict[str, Any]) -> tuple[bytes, str]:
        """The body and Stripe-Signature header Stripe would send for ``event``."""
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = int(time.time())  # construct_event checks against the real clock
        signature = stripe.WebhookSignature._compute_signature(
            f"{timestamp}.{body.decode()}", self.webhook_secret
        )
        return body, f"t={timestamp},v1={signature}"

    async def close(self) -> None:
        return None


def build(settings: Settings) -> PaymentProvider:
    if settings.stripe_enabled:
        return StripeProvider(settings)
    return TestProvider(settings)


def provider(runtime: Runtime) -> PaymentProvider:
    """The runtime's payment provider, built on first use."""
    if runtime.payments is None:
        runtime.payments = build(runtime.settings)
    return cast(PaymentProvider, runtime.payments)
