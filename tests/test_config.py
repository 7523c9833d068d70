from __future__ import annotations

import pytest
from pydantic import ValidationError

from callmeter.config import DEV_SECRET_KEY, Settings

STRONG = "s" * 40
STRIPE = {"stripe_secret_key": "sk_live_x", "stripe_webhook_secret": "whsec_x"}


class TestProductionRefusesUnsafeDefaults:
    def test_default_secret(self) -> None:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(env="production", cors_origins=["https://app.example"])

    def test_short_secret(self) -> None:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(env="production", secret_key="short", cors_origins=["https://a.example"])

    def test_open_cors(self) -> None:
        with pytest.raises(ValidationError, match="CORS"):
            Settings(env="production", secret_key=STRONG)

    def test_test_payments(self) -> None:
        with pytest.raises(ValidationError, match="STRIPE"):
            Settings(env="production", secret_key=STRONG, cors_origins=["https://a.example"])

    def test_safe_production(self) -> None:
        s = Settings(
            env="production", secret_key=STRONG, cors_origins=["https://a.example"], **STRIPE
        )
        assert s.secret_key != DEV_SECRET_KEY
        assert s.stripe_enabled


def test_stripe_keys_go_together() -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(stripe_secret_key="sk_test_x")


def test_coin_packs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CALLMETER_COIN_PACKS",
        '[{"id": "eur-500", "coins": 500, "bonus_coins": 50, "currency": "eur", '
        '"unit_amount": 1999}]',
    )
    [pack] = Settings().coin_packs
    assert (pack.id, pack.total_coins, pack.unit_amount) == ("eur-500", 550, 1999)
    for bad in ('[{"id": "A B", "coins": 1, "currency": "eur", "unit_amount": 100}]',
                '[{"id": "x", "coins": 0, "currency": "eur", "unit_amount": 100}]',
                '[{"id": "x", "coins": 1, "currency": "euro", "unit_amount": 100}]',
                '[{"id": "x", "coins": 1, "currency": "eur", "unit_amount": 100, "price": 1}]',
                '[{"id": "x", "coins": 1, "currency": "eur", "unit_amount": 100},'
                ' {"id": "x", "coins": 2, "currency": "eur", "unit_amount": 200}]'):  # fmt: skip
        monkeypatch.setenv("CALLMETER_COIN_PACKS", bad)
        with pytest.raises(ValidationError):
            Settings()


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMETER_BILLING_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("CALLMETER_BILLING_POLICY", "per_second")
    monkeypatch.setenv("CALLMETER_METER_TICK_SECONDS", "0.25")
    monkeypatch.setenv("CALLMETER_CORS_ORIGINS", "https://a.example, https://b.example")
    s = Settings()
    assert s.billing_interval_seconds == 1
    assert s.billing_policy == "per_second"
    assert s.meter_tick_seconds == 0.25
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.default_rate == 10
    assert s.host_share_percent == 70
    assert not s.livekit_enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CALLMETER_BILLING_INTERVAL_SECONDS", "0"),
        ("CALLMETER_HOST_SHARE_PERCENT", "101"),
        ("CALLMETER_BILLING_POLICY", "per_minute_maybe"),
        ("CALLMETER_DEFAULT_RATE", "-1"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
