"""One exception hierarchy for every domain error; each class's docstring is its message.

Services raise these; one handler renders them as ``{"error": code, "detail": sentence}``
with the class's HTTP status (plus the error's structured ``fields`` and ``headers``, when it
has any). Services never raise HTTPException.
"""

from __future__ import annotations

import math
from typing import ClassVar


class CallmeterError(Exception):
    """Something went wrong."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    # the class's Retry-After (seconds), when every such error has the same
    retry_after_seconds: ClassVar[int | None] = None

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        self.detail = detail or (self.__doc__ or self.code).strip()
        # What a client acts on travels as data, never only inside the English ``detail``.
        self.fields: dict[str, int | str] = {}
        self.headers: dict[str, str] = {}
        # Whole seconds after which trying again may succeed: the Retry-After header.
        if retry_after is None:
            self.retry_after = self.retry_after_seconds
        else:
            self.retry_after = max(1, math.ceil(retry_after))
        if self.retry_after is not None:
            self.headers["Retry-After"] = str(self.retry_after)
        super().__init__(self.detail)


class BadRequest(CallmeterError):
    """The request is not valid."""

    status_code = 400
    code = "bad_request"


class ValidationFailed(CallmeterError):
    """The request body or parameters are not valid."""

    status_code = 422
    code = "validation_error"


class NotAuthenticated(CallmeterError):
    """Authentication is required: send a valid, unexpired bearer token."""

    status_code = 401
    code = "not_authenticated"


class InvalidCredentials(CallmeterError):
    """Wrong username or password."""

    status_code = 401
    code = "invalid_credentials"


class Forbidden(CallmeterError):
    """You are not allowed to do this."""

    status_code = 403
    code = "forbidden"


class NotFound(CallmeterError):
    """Not found."""

    status_code = 404
    code = "not_found"


class InsufficientFunds(CallmeterError):
    """Not enough available coins (``needed`` in the body: the coins the request needed)."""

    status_code = 402
    code = "insufficient_funds"

    def __init__(self, needed: int | None = None) -> None:
        if needed is None:
            super().__init__()
        else:
            super().__init__(f"not enough coins: {needed} needed")
            self.fields["needed"] = needed


class UsernameTaken(CallmeterError):
    """That username is already taken."""

    status_code = 409
    code = "username_taken"


class IdempotencyConflict(CallmeterError):
    """This Idempotency-Key was already used with a different request."""

    status_code = 409
    code = "idempotency_conflict"


class PayloadTooLarge(CallmeterError):
    """The request body is too large."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(CallmeterError):
    """The body is not of a type this endpoint takes."""

    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(CallmeterError):
    """Too many attempts; wait a minute and try again."""

    status_code = 429
    code = "rate_limited"


class TooManyStreams(TooManyRequests):
    """Too many open event streams; close one and try again."""

    code = "too_many_streams"


class SignalRateLimited(TooManyRequests):
    """Too many signals on this call; wait and try again."""

    code = "signal_rate_limited"


class SignalLimitReached(CallmeterError):
    """This call has stored as many signals as it may."""

    status_code = 409
    code = "signal_limit_reached"


class MessageRateLimited(TooManyRequests):
    """Too many messages on this call; wait and try again."""

    code = "message_rate_limited"


class MessageLimitReached(CallmeterError):
    """This call has stored as many messages as it may."""

    status_code = 409
    code = "message_limit_reached"


class TipWindowClosed(CallmeterError):
    """A call can be tipped while it lasts and for a while after it ends, not later."""

    status_code = 409
    code = "tip_window_closed"


class RingCooldown(CallmeterError):
    """You rang too often; wait before ringing again."""

    status_code = 429
    code = "ring_cooldown"

    def __init__(self, retry_after_seconds: float, detail: str | None = None) -> None:
        super().__init__(detail, retry_after=retry_after_seconds)
        assert self.retry_after is not None
        self.fields["retry_after"] = self.retry_after


class Busy(CallmeterError):
    """The server is busy; try again in a moment."""

    status_code = 503
    code = "busy"


class MediaUnavailable(CallmeterError):
    """The media server is not reachable right now; nothing was charged, try again shortly."""

    status_code = 503
    code = "media_unavailable"


class InvalidWebhook(CallmeterError):
    """The webhook's signature or body hash does not verify."""

    status_code = 401
    code = "invalid_webhook"


class InvalidWebhookEvent(CallmeterError):
    """The webhook event is signed but cannot be applied (recorded, not acted on)."""

    status_code = 422
    code = "invalid_webhook_event"


class WebhooksNotConfigured(CallmeterError):
    """LiveKit is not configured on this server."""

    status_code = 404
    code = "not_found"


class LedgerError(CallmeterError):
    """A ledger operation was refused."""

    status_code = 409
    code = "ledger_error"


class HostBusy(CallmeterError):
    """The host is already in a call."""

    status_code = 409
    code = "host_busy"


class ClientBusy(CallmeterError):
    """You already have an unfinished call."""

    status_code = 409
    code = "client_busy"


class HostUnavailable(CallmeterError):
    """The host is not accepting calls."""

    status_code = 409
    code = "host_unavailable"


class HostOffline(CallmeterError):
    """The host has no page open: nobody would answer."""

    status_code = 409
    code = "host_offline"


class RateChanged(CallmeterError):
    """The host's rate changed since you saw it."""

    status_code = 409
    code = "rate_changed"

    def __init__(self, rate: int) -> None:
        super().__init__(f"the host's rate is now {rate} coins per interval")
        self.fields["rate"] = rate


class CallEnded(CallmeterError):
    """The call has ended."""

    status_code = 409
    code = "call_ended"


class InvalidCallState(CallmeterError):
    """The call is not in a state that allows this."""

    status_code = 409
    code = "invalid_call_state"


class ConcurrentUpdate(CallmeterError):
    """The call changed while this request was handled; try again."""

    status_code = 409
    code = "concurrent_update"
    retry_after_seconds = 1


class RetryLater(CallmeterError):
    """Another request changed the same data at the same moment; try again in a moment."""

    status_code = 503
    code = "retry_later"
    retry_after_seconds = 1


class RefundTooLarge(CallmeterError):
    """A refund cannot exceed what the call charged minus what was already refunded."""

    status_code = 409
    code = "refund_exceeds_charge"


class DatabaseUnavailable(CallmeterError):
    """The database is not answering right now (down, hung or overloaded); try again shortly."""

    status_code = 503
    code = "database_unavailable"
    retry_after_seconds = 2


class AccountFrozen(CallmeterError):
    """Your account is frozen while a payment dispute is reviewed: no calls or purchases."""

    status_code = 403
    code = "account_frozen"


class TooManyPurchases(CallmeterError):
    """Too many unfinished purchases: complete or cancel one, or try again later."""

    status_code = 429
    code = "too_many_purchases"
    retry_after_seconds = 60


class PaymentProviderUnavailable(CallmeterError):
    """The payment provider is not reachable right now; nothing was charged. Try again with
    the same Idempotency-Key."""

    status_code = 503
    code = "payment_provider_unavailable"
    retry_after_seconds = 5


class InvalidStripeWebhook(CallmeterError):
    """The Stripe-Signature header does not verify this body (or is too old)."""

    status_code = 400
    code = "invalid_webhook"


class DisputeOpen(CallmeterError):
    """A payment dispute of this client is still open: the freeze stays until it closes."""

    status_code = 409
    code = "dispute_open"


class PayoutBelowMinimum(CallmeterError):
    """A payout must be at least the minimum (``minimum`` in the body)."""

    status_code = 422
    code = "payout_below_minimum"


class PayoutExceedsMatured(CallmeterError):
    """Only matured earnings can be paid out (``matured`` in the body: what can be now)."""

    status_code = 409
    code = "payout_exceeds_matured"


class TooManyPayouts(CallmeterError):
    """Too many payout requests are waiting for review (``pending`` in the body)."""

    status_code = 409
    code = "too_many_payouts"


class PayoutsNotEnabled(CallmeterError):
    """Set up your payout account first: Stripe has not enabled payouts to it yet."""

    status_code = 409
    code = "payouts_not_enabled"


class InvalidPayoutState(CallmeterError):
    """The payout is not in a state that allows this."""

    status_code = 409
    code = "invalid_payout_state"


class RefundBlockedByPayout(CallmeterError):
    """The host's earnings for this refund are held by a payout request: approve or reject
    it first (a refund after a payout is paid is taken by the platform)."""

    status_code = 409
    code = "refund_blocked_by_payout"


class AdjustmentExceedsEarnings(CallmeterError):
    """A negative adjustment cannot take more than the host's available earnings."""

    status_code = 409
    code = "adjustment_exceeds_earnings"


# Codes answered outside the classes above: the framework's own HTTP errors (by status; any
# other status answers "error"), the validation and last-resort handlers, and the connection
# layer's refusals (kit/http_server.py).
HTTP_ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
OTHER_ERROR_CODES = (
    "error",
    "internal_error",
    "validation_error",
    "request_timeout",
    "request_header_fields_too_large",
)


def error_codes() -> list[str]:
    """Every ``error`` code the API answers with, sorted: the OpenAPI document lists them so
    a client can map each one to a sentence of its own (the web client's test checks it)."""
    codes = set(HTTP_ERROR_CODES.values()) | set(OTHER_ERROR_CODES)
    classes: list[type[CallmeterError]] = [CallmeterError]
    while classes:
        cls = classes.pop()
        codes.add(cls.code)
        classes.extend(cls.__subclasses__())
    return sorted(codes)
