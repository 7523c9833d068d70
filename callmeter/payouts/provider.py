"""Who pays hosts: an admin by hand (``manual``, the default) or Stripe Connect Express.

``manual``: an approved payout waits for an admin to pay it (bank transfer, PayPal) and mark
it paid with the external reference, or failed. ``stripe``: the host onboards to an Express
account (an account link); ``account.updated`` says whether it can receive transfers; an
approved payout becomes one transfer, its idempotency key derived from the payout, and
``transfer.reversed`` returns the coins. The official ``stripe`` package, with the same
keys as purchases (``CALLMETER_STRIPE_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import stripe

from callmeter.config import PayoutProviderName, Settings
from callmeter.errors import InvalidPayoutState, PaymentProviderUnavailable
from callmeter.kit.runtime import Runtime


class PayoutRefused(Exception):
    """The provider refused this payout for good (not a transient failure)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class TransferRequest:
    payout_id: int
    amount_minor: int
    currency: str
    destination: str
    idempotency_key: str


class PayoutProvider(Protocol):
    name: str
    automatic: bool  # pays on approval (else an admin marks it paid)

    async def create_account(self, host_id: int, idempotency_key: str) -> str: ...

    async def onboarding_link(self, account_id: str, refresh_url: str, return_url: str) -> str: ...

    async def transfer(self, request: TransferRequest) -> str: ...

    async def close(self) -> None: ...


class ManualPayouts:
    name = "manual"
    automatic = False

    async def create_account(self, host_id: int, idempotency_key: str) -> str:
        raise InvalidPayoutState("payouts are paid by hand: there is no account to set up")

    async def onboarding_link(self, account_id: str, refresh_url: str, return_url: str) -> str:
        raise InvalidPayoutState("payouts are paid by hand: there is no account to set up")

    async def transfer(self, request: TransferRequest) -> str:
        raise AssertionError("a manual payout is marked paid by an admin")

    async def close(self) -> None:
        return None


class StripeConnectPayouts:
    name = "stripe"
    automatic = True

    def __init__(self, settings: Settings, http_client: stripe.HTTPXClient | None = None) -> None:
        if not settings.stripe_secret_key:
            raise ValueError("Stripe Connect payouts need CALLMETER_STRIPE_SECRET_KEY")
        self._http = http_client or stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=cast(Any, base),
            http_client=self._http,
            max_network_retries=settings.stripe_max_network_retries,
        )

    async def create_account(self, host_id: int, idempotency_key: str) -> str:
        params: dict[str, Any] = {
            "type": "express",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"host_id": str(host_id)},
        }
        try:
            account = await self._client.v1.accounts.create_async(
                cast(Any, params), options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable("Stripe did not create the payout account") from exc
        return account.id

    async def onboarding_link(self, account_id: str, refresh_url: str, return_url: str) -> str:
        params: dict[str, Any] = {
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": "account_onboarding",
        }
        try:
            link = await self._client.v1.account_links.create_async(cast(Any, params))
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable("Stripe did not make an onboarding link") from exc
        return link.url

    async def transfer(self, request: TransferRequest) -> str:
        """The transfer's id. Raises PayoutRefused when Stripe says no for good (a 4xx:
        the account cannot receive transfers, the platform's balance is short) and
        PaymentProviderUnavailable when it did not answer (5xx, network: retried by the
        package with the same key first): the payout stays approved, to be tried again."""
        group = request.idempotency_key  # the payout's, and this installation's
        try:
            # Stripe forgets an idempotency key after about a day: a payout approved again
            # later finds the transfer its first attempt made (its answer was lost)
            made = await self._client.v1.transfers.list_async(
                {"transfer_group": group, "destination": request.destination, "limit": 1}
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable("Stripe did not answer") from exc
        if made.data:
            return made.data[0].id
        params: dict[str, Any] = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "destination": request.destination,
            "metadata": {"payout_id": str(request.payout_id)},
            "transfer_group": group,
        }
        try:
            transfer = await self._client.v1.transfers.create_async(
                cast(Any, params), options={"idempotency_key": request.idempotency_key}
            )
        except (stripe.InvalidRequestError, stripe.PermissionError) as exc:
            raise PayoutRefused(str(exc.user_message or exc.code or "refused")[:500]) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable("Stripe did not answer the transfer") from exc
        return transfer.id

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def build(settings: Settings) -> PayoutProvider:
    if settings.payout_provider is PayoutProviderName.stripe:
        return StripeConnectPayouts(settings)
    return ManualPayouts()


def payout_provider(runtime: Runtime) -> PayoutProvider:
    """The runtime's payout provider, built on first use."""
    if runtime.payouts is None:
        runtime.payouts = build(runtime.settings)
    return cast(PayoutProvider, runtime.payouts)
