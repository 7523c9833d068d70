"""SQLAlchemy tables, one module per table. Importing this package registers them all."""

from callmeter.models.account import EXTERNAL_KINDS, Account, AccountKind
from callmeter.models.auth_attempt import AttemptKind, AttemptState, AuthAttempt
from callmeter.models.base import Base
from callmeter.models.call import (
    Call,
    CallMessage,
    CallSignal,
    CallStatus,
    EndReason,
    MessageKind,
)
from callmeter.models.hold import Hold
from callmeter.models.host_block import HostAvatar, HostBlock
from callmeter.models.idempotency import IdempotentRequest
from callmeter.models.known_address import KnownAddress
from callmeter.models.media import MediaKick, WebhookEvent
from callmeter.models.payout import Payout, PayoutStatus
from callmeter.models.purchase import DisputeStatus, PaymentEvent, Purchase, PurchaseStatus
from callmeter.models.transfer import MAX_AMOUNT, Posting, Transfer
from callmeter.models.user import Role, User

__all__ = [
    "EXTERNAL_KINDS",
    "MAX_AMOUNT",
    "Account",
    "AccountKind",
    "AttemptKind",
    "AttemptState",
    "AuthAttempt",
    "Base",
    "Call",
    "CallMessage",
    "CallSignal",
    "CallStatus",
    "DisputeStatus",
    "EndReason",
    "Hold",
    "HostAvatar",
    "HostBlock",
    "IdempotentRequest",
    "KnownAddress",
    "MediaKick",
    "MessageKind",
    "PaymentEvent",
    "Payout",
    "PayoutStatus",
    "Posting",
    "Purchase",
    "PurchaseStatus",
    "Role",
    "Transfer",
    "User",
    "WebhookEvent",
]
