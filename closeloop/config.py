"""Configuration: the only module that reads the environment (12-factor).

Every setting has a working default for the embedded mode: a SQLite file in the
current directory, tasks in-process, side effects for services that are not
configured written to files instead of being sent."""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///closeloop.db", description="SQLAlchemy URL; postgresql://… in production")
    timezone: str = Field("UTC", alias="CLOSELOOP_TIMEZONE", description="the company's time zone")
    invoice_series: str = Field("INV-{year}", alias="CLOSELOOP_INVOICE_SERIES")
    quote_series: str = Field("Q-{year}", alias="CLOSELOOP_QUOTE_SERIES")
    quote_valid_days: int = Field(30, alias="CLOSELOOP_QUOTE_VALID_DAYS")
    payment_terms_days: int = Field(30, alias="CLOSELOOP_PAYMENT_TERMS_DAYS")
    outbox_dir: Path = Field(Path("closeloop-outbox"), alias="CLOSELOOP_OUTBOX_DIR",
                             description="where side effects for unconfigured services are written")
    relay_lease_seconds: int = Field(60, alias="CLOSELOOP_RELAY_LEASE_SECONDS")
    relay_max_attempts: int = Field(10, alias="CLOSELOOP_RELAY_MAX_ATTEMPTS")
    relay_poll_seconds: float = Field(0.5, alias="CLOSELOOP_RELAY_POLL_SECONDS")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, url: str) -> str:
        # Accept the URLs Heroku-style platforms hand out; we talk to PostgreSQL via psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
        return name

    @field_validator("invoice_series", "quote_series")
    @classmethod
    def _series(cls, template: str) -> str:
        try:
            rendered = template.format(year=2026)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"series template {template!r} may only use {{year}}: {error}") from None
        if not rendered or len(rendered) > 24:
            raise ValueError(f"series template {template!r} must render to 1-24 characters")
        return template


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
