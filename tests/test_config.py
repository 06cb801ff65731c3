"""Configuration from the environment, with defaults that work out of the box."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from closeloop.config import Settings, load_settings

VARIABLES = [
    "DATABASE_URL", "CLOSELOOP_TIMEZONE", "CLOSELOOP_INVOICE_SERIES", "CLOSELOOP_QUOTE_SERIES",
    "CLOSELOOP_QUOTE_VALID_DAYS", "CLOSELOOP_PAYMENT_TERMS_DAYS", "CLOSELOOP_OUTBOX_DIR",
    "CLOSELOOP_RELAY_LEASE_SECONDS", "CLOSELOOP_RELAY_MAX_ATTEMPTS", "CLOSELOOP_RELAY_POLL_SECONDS",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_the_defaults_run_embedded_on_a_local_sqlite_file():
    settings = Settings()
    assert settings.database_url == "sqlite:///closeloop.db"
    assert settings.timezone == "UTC"
    assert settings.invoice_series == "INV-{year}"
    assert settings.quote_series == "Q-{year}"
    assert settings.quote_valid_days == 30
    assert settings.payment_terms_days == 30
    assert settings.outbox_dir == Path("closeloop-outbox")
    assert settings.relay_max_attempts == 10


@pytest.mark.parametrize(("given", "used"), [
    ("postgres://app:secret@db.example.com:5432/ledger", "postgresql+psycopg://app:secret@db.example.com:5432/ledger"),
    ("postgresql://app@localhost/ledger", "postgresql+psycopg://app@localhost/ledger"),
    ("postgresql+psycopg://app@localhost/ledger", "postgresql+psycopg://app@localhost/ledger"),
    ("sqlite:////var/lib/closeloop/ledger.db", "sqlite:////var/lib/closeloop/ledger.db"),
])
def test_database_urls_from_the_platform_are_spoken_to_with_psycopg(monkeypatch, given, used):
    monkeypatch.setenv("DATABASE_URL", given)
    assert Settings().database_url == used
    assert Settings(database_url=given).database_url == used


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CLOSELOOP_INVOICE_SERIES", "RE-{year}")
    monkeypatch.setenv("CLOSELOOP_QUOTE_SERIES", "ANG-{year}")
    monkeypatch.setenv("CLOSELOOP_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("CLOSELOOP_PAYMENT_TERMS_DAYS", "14")
    monkeypatch.setenv("CLOSELOOP_OUTBOX_DIR", "/tmp/closeloop-test-outbox")
    monkeypatch.setenv("CLOSELOOP_RELAY_POLL_SECONDS", "0.25")
    settings = load_settings()
    assert settings.invoice_series == "RE-{year}"
    assert settings.quote_series == "ANG-{year}"
    assert settings.timezone == "Europe/Berlin"
    assert settings.payment_terms_days == 14
    assert settings.outbox_dir == Path("/tmp/closeloop-test-outbox")
    assert settings.relay_poll_seconds == 0.25


def test_environment_variable_names_are_not_case_sensitive(monkeypatch):
    monkeypatch.setenv("closeloop_invoice_series", "F-{year}")
    assert Settings().invoice_series == "F-{year}"


def test_explicit_values_override_the_environment(monkeypatch):
    monkeypatch.setenv("CLOSELOOP_INVOICE_SERIES", "RE-{year}")
    assert load_settings(invoice_series="X-{year}").invoice_series == "X-{year}"


def test_a_number_setting_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv("CLOSELOOP_PAYMENT_TERMS_DAYS", "thirty")
    with pytest.raises(ValidationError, match="CLOSELOOP_PAYMENT_TERMS_DAYS"):
        Settings()


@pytest.mark.parametrize("template", ["INV-{month}", "INV-{}", "INV-{0}", "INV-{year", "INV-{year:%Y}"])
def test_a_series_template_may_only_use_the_year(monkeypatch, template):
    monkeypatch.setenv("CLOSELOOP_INVOICE_SERIES", template)
    with pytest.raises(ValidationError, match=r"may only use \{year\}"):
        Settings()


def test_an_unknown_placeholder_is_named_in_the_refusal(monkeypatch):
    monkeypatch.setenv("CLOSELOOP_QUOTE_SERIES", "Q-{month}")
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = str(raised.value)
    assert "series template 'Q-{month}' may only use {year}" in message
    assert "month" in message


@pytest.mark.parametrize("template", ["", "INVOICE-NUMBER-SERIES-{year}"])
def test_a_series_must_render_to_a_short_prefix(template):
    with pytest.raises(ValidationError, match="must render to 1-24 characters"):
        Settings(invoice_series=template)


def test_a_series_without_the_year_is_allowed():
    assert Settings(invoice_series="INV").invoice_series == "INV"
