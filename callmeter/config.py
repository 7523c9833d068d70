"""Settings, read from the environment with the prefix ``CALLMETER_`` (see the README)."""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "callmeter-development-secret-do-not-use-in-production"


class Environment(enum.StrEnum):
    development = "development"
    test = "test"
    production = "production"


class BillingPolicy(enum.StrEnum):
    """How billable seconds turn into coins (design rule 2)."""

    per_completed_interval = "per_completed_interval"
    per_started_interval = "per_started_interval"
    per_second = "per_second"


class PasswordHashProfile(enum.StrEnum):
    """argon2 cost profile; ``cheapest`` exists for test suites only."""

    rfc_9106_low_memory = "rfc_9106_low_memory"
    cheapest = "cheapest"


class PayoutProviderName(enum.StrEnum):
    manual = "manual"  # an admin pays (bank transfer, PayPal) and marks it paid
    stripe = "stripe"  # Stripe Connect Express: a transfer to the host's account


class CoinPack(BaseModel):
    """A pack of coins for sale: ``unit_amount`` is its price in the currency's minor units
    (cents). The price is the server's alone: a purchase names only the pack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    coins: int = Field(ge=1, le=1_000_000)
    bonus_coins: int = Field(default=0, ge=0, le=1_000_000)
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[a-z]{3}$")
    unit_amount: int = Field(ge=50, le=99_999_999)  # Stripe's minimum is about 0.50

    @property
    def total_coins(self) -> int:
        return self.coins + self.bonus_coins


# Better value on bigger packs: 5.0, 3.9, 3.6 and 3.3 cents a coin.
DEFAULT_COIN_PACKS = tuple(
    CoinPack(id=f"{currency}-{coins + bonus}", coins=coins, bonus_coins=bonus,
             currency=currency, unit_amount=amount)
    for currency in ("eur", "usd")
    for coins, bonus, amount in ((100, 0, 499), (300, 30, 1299), (600, 100, 2499),
                                 (1500, 300, 5999))
)  # fmt: skip


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLMETER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./callmeter.db"
    env: Environment = Environment.development
    secret_key: str = DEV_SECRET_KEY
    access_token_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])

    billing_interval_seconds: int = Field(default=60, ge=1, le=3600)
    default_rate: int = Field(default=10, ge=1, le=1_000_000)
    min_rate: int = Field(default=1, ge=1)
    max_rate: int = Field(default=10_000, ge=1, le=1_000_000_000)
    billing_policy: BillingPolicy = BillingPolicy.per_completed_interval
    free_seconds: int = Field(default=0, ge=0, le=3600)
    host_share_percent: int = Field(default=70, ge=0, le=100)
    heartbeat_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    # A quiet heartbeat's presence is kept in memory and written in one batch this often
    # (PostgreSQL; calls.beats): a crash loses at most this much presence, in the client's
    # favour. 0: every heartbeat writes its own.
    presence_flush_seconds: float = Field(default=0.25, ge=0, le=5)
    ring_timeout_seconds: int = Field(default=45, ge=1, le=3600)
    # A host is online while one of its pages says so (POST /v1/hosts/me/presence) at least
    # this often; calls to an offline host are refused. 0: every host counts as online.
    host_presence_timeout_seconds: int = Field(default=45, ge=0, le=3600)
    connect_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    # Fair to hosts: a client whose call to a host ended unanswered waits before ringing that
    # host again, and makes at most so many unanswered rings per window (0 = no limit).
    rering_cooldown_seconds: int = Field(default=60, ge=0, le=24 * 3600)
    unanswered_rings_per_window: int = Field(default=10, ge=0, le=10_000)
    ring_window_seconds: int = Field(default=600, ge=1, le=24 * 3600)
    meter_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    meter_batch_size: int = Field(default=1000, ge=1, le=10_000)
    meter_batch_path: bool = True
    events_poll_seconds: float = Field(default=0.5, gt=0, le=5)

    # Every wait on the database is bounded (docs/reliability.md): a database that is down
    # or hung answers 503 database_unavailable within these, never hangs a request.
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    db_statement_timeout_seconds: float = Field(
        default=3.0,
        ge=0,
        le=3600,
        description="PostgreSQL statement_timeout (0 = none); the driver gives up 1 s later",
    )
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = None
    livekit_token_ttl_seconds: int = Field(default=600, ge=60, le=24 * 3600)
    livekit_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    livekit_reconcile_seconds: float = Field(default=5.0, gt=0, le=300)
    livekit_absence_grace_seconds: int = Field(default=15, ge=1, le=600)
    livekit_departure_timeout_seconds: int = Field(default=20, ge=0, le=3600)

    web_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "web" / "dist",
        description="the built web client (served at /)",
    )
    password_hash_profile: PasswordHashProfile = PasswordHashProfile.rfc_9106_low_memory
    # Login and registration limits (docs/api.md, "Login and registration limits").
    login_failures_per_minute: int = Field(default=10, ge=1, le=10_000)
    login_failures_per_address_per_minute: int = Field(default=30, ge=1, le=100_000)
    login_failures_per_username_per_minute: int = Field(default=20, ge=1, le=100_000)
    login_known_address_days: int = Field(default=30, ge=0, le=3650)
    registrations_per_address_per_hour: int = Field(default=20, ge=1, le=100_000)
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    password_hash_queue: int = Field(default=16, ge=0, le=10_000)
    password_hash_wait_seconds: float = Field(default=1.0, gt=0, le=30)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # `callmeter serve`'s HTTP server (callmeter/kit/http_server.py)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(default=100, ge=10, le=10_000)
    request_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # event streams open at once, counted per API process
    max_streams_per_user: int = Field(default=16, ge=1, le=10_000)
    max_streams_per_user_call: int = Field(default=4, ge=1, le=10_000)

    # peer-to-peer signaling
    max_signal_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    signals_per_window: int = Field(default=50, ge=1, le=100_000)
    signal_window_seconds: int = Field(default=10, ge=1, le=3600)
    max_signals_per_call: int = Field(default=500, ge=1, le=1_000_000)

    # a call's chat (docs/chat.md): per sender per window, stored per call
    messages_per_window: int = Field(default=5, ge=1, le=10_000)
    message_window_seconds: int = Field(default=10, ge=1, le=3600)
    max_messages_per_call: int = Field(default=2000, ge=1, le=1_000_000)
    # tips: how long after a call ends its client may still tip, and the host's share
    tip_window_seconds: int = Field(default=600, ge=0, le=30 * 86400)
    tip_host_share_percent: int = Field(default=100, ge=0, le=100)

    # Purchases (docs/payments.md). No Stripe keys: the built-in test payment provider.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # a stand-in's URL in tests; None = Stripe's own
    stripe_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5)
    # Where Stripe sends the browser back to (the web client's origin); None = the
    # origin the purchase request came to.
    public_url: str | None = None
    coin_packs: list[CoinPack] = Field(default_factory=lambda: list(DEFAULT_COIN_PACKS))
    pending_purchases_per_hour: int = Field(default=20, ge=1, le=10_000)
    # Connect's webhook endpoint has its own signing secret (account.updated, transfers)
    stripe_connect_webhook_secret: str | None = None

    # Payouts (docs/payouts.md): from earnings older than the hold, in whole requests
    payout_hold_days: int = Field(default=14, ge=0, le=365)
    payout_min_coins: int = Field(default=1000, ge=1, le=1_000_000_000)
    payout_max_pending: int = Field(default=3, ge=1, le=100)
    payout_provider: PayoutProviderName = PayoutProviderName.manual
    # what a coin of earnings pays out, in minor units (cents) of each currency
    payout_rates: dict[str, int] = Field(default_factory=lambda: {"eur": 3, "usd": 3})
    payout_currency: str = Field(default="eur", pattern=r"^[a-z]{3}$")

    @model_validator(mode="before")
    @classmethod
    def _split_cors(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("cors_origins")
            if isinstance(raw, str):
                data["cors_origins"] = [o.strip() for o in raw.split(",") if o.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env is Environment.production:
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                raise ValueError(
                    "CALLMETER_SECRET_KEY must be set to a random value of at least 32 "
                    "characters when CALLMETER_ENV=production"
                )
            if "*" in self.cors_origins:
                raise ValueError(
                    "CALLMETER_CORS_ORIGINS must list the allowed origins (not '*') "
                    "when CALLMETER_ENV=production"
                )
            if self.livekit_enabled and len(self.livekit_api_secret or "") < 32:
                raise ValueError(
                    "CALLMETER_LIVEKIT_API_SECRET must be at least 32 characters in production"
                )
            if not self.stripe_enabled:
                raise ValueError(
                    "CALLMETER_STRIPE_SECRET_KEY and CALLMETER_STRIPE_WEBHOOK_SECRET must be "
                    "set when CALLMETER_ENV=production: the test payment provider gives "
                    "coins away"
                )
            if self.password_hash_profile is PasswordHashProfile.cheapest:
                raise ValueError("the 'cheapest' password hash profile is for tests only")
        if bool(self.stripe_secret_key) != bool(self.stripe_webhook_secret):
            raise ValueError(
                "CALLMETER_STRIPE_SECRET_KEY and CALLMETER_STRIPE_WEBHOOK_SECRET go together"
            )
        if self.payout_provider is PayoutProviderName.stripe and not self.stripe_enabled:
            raise ValueError("CALLMETER_PAYOUT_PROVIDER=stripe needs the Stripe keys")
        if self.payout_currency not in self.payout_rates:
            raise ValueError("CALLMETER_PAYOUT_CURRENCY needs a rate in CALLMETER_PAYOUT_RATES")
        if any(not (len(c) == 3 and c.isascii() and c.islower()) or not 0 < r <= 10_000
               for c, r in self.payout_rates.items()):  # fmt: skip
            raise ValueError("CALLMETER_PAYOUT_RATES: currency -> 1..10000 minor units a coin")
        ids = [pack.id for pack in self.coin_packs]
        if len(set(ids)) != len(ids):
            raise ValueError("CALLMETER_COIN_PACKS: two packs share an id")
        if self.min_rate > self.max_rate:
            raise ValueError("CALLMETER_MIN_RATE must not exceed CALLMETER_MAX_RATE")
        return self

    @property
    def stripe_enabled(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)

    @property
    def livekit_enabled(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)


@lru_cache
def get_settings() -> Settings:
    return Settings()
