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
    ledger_concurrency: int = Field(4, alias="CLOSELOOP_LEDGER_CONCURRENCY", ge=1, le=64,
                                    description="threads of one process inside the ledger at once")
    discount_approval_percent: int = Field(15, alias="CLOSELOOP_DISCOUNT_APPROVAL_PERCENT", ge=0, le=100,
                                           description="discounts above this need a manager's approval")

    # Slack. Without a bot token and signing secret, Slack stays off and posts go to the file sink.
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN", description="set: Socket Mode")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    slack_team_id: str | None = Field(None, alias="SLACK_TEAM_ID", description="refuse other workspaces")
    slack_app_id: str | None = Field(None, alias="SLACK_APP_ID", description="refuse requests for other apps")
    slack_deals_channel: str = Field("#deals", alias="SLACK_DEALS_CHANNEL")
    slack_finance_channel: str = Field("#finance", alias="SLACK_FINANCE_CHANNEL")
    slack_roles: str = Field("", alias="CLOSELOOP_SLACK_ROLES",
                             description='role grants applied at start, e.g. "U01=rep;U02=finance,manager;S03=rep"')
    documents_dir: Path = Field(Path("closeloop-documents"), alias="CLOSELOOP_DOCUMENTS_DIR",
                                description="where rendered invoice and quote PDFs are kept")

    # DocuSign (e-signature). Without the integration key, user id and private key, esign.send
    # stays on the file sink; Connect webhooks are accepted whenever HMAC keys are set.
    docusign_integration_key: str | None = Field(None, alias="DOCUSIGN_INTEGRATION_KEY")
    docusign_user_id: str | None = Field(None, alias="DOCUSIGN_USER_ID")
    docusign_account_id: str | None = Field(None, alias="DOCUSIGN_ACCOUNT_ID",
                                            description="unset: the user's default account")
    docusign_private_key: str | None = Field(None, alias="DOCUSIGN_PRIVATE_KEY", description="RSA key, PEM")
    docusign_private_key_file: Path | None = Field(None, alias="DOCUSIGN_PRIVATE_KEY_FILE")
    docusign_oauth_host: str = Field("account-d.docusign.com", alias="DOCUSIGN_OAUTH_HOST",
                                     description="host[:port] only; the SDK always uses https")
    docusign_base_path: str | None = Field(None, alias="DOCUSIGN_BASE_PATH",
                                           description="REST base e.g. https://demo.docusign.net/restapi; "
                                                       "unset: the account's base URI from user info")
    docusign_ca_cert: Path | None = Field(None, alias="DOCUSIGN_CA_CERT", description="extra CA bundle (tests)")
    docusign_connect_hmac_keys: str = Field("", alias="DOCUSIGN_CONNECT_HMAC_KEYS",
                                            description="comma-separated Connect HMAC keys, all active (rotation)")
    docusign_reminder_delay_days: int = Field(2, alias="DOCUSIGN_REMINDER_DELAY_DAYS", ge=0, le=999)
    docusign_reminder_frequency_days: int = Field(2, alias="DOCUSIGN_REMINDER_FREQUENCY_DAYS", ge=0, le=999)
    docusign_expire_after_days: int = Field(30, alias="DOCUSIGN_EXPIRE_AFTER_DAYS", ge=1, le=999)
    docusign_expire_warn_days: int = Field(3, alias="DOCUSIGN_EXPIRE_WARN_DAYS", ge=0, le=999)
    esign_reconcile_minutes: int = Field(30, alias="CLOSELOOP_ESIGN_RECONCILE_MINUTES", ge=1,
                                         description="poll envelopes still open after this long")
    esign_reconcile_tick_seconds: float = Field(300, alias="CLOSELOOP_ESIGN_RECONCILE_TICK_SECONDS", gt=0,
                                                description="how often the embedded process runs the reconciler")
    port: int = Field(3000, alias="PORT")
    host: str = Field("0.0.0.0", alias="CLOSELOOP_HOST", description="address `closeloop web` listens on")

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def docusign_enabled(self) -> bool:
        return bool(self.docusign_integration_key and self.docusign_user_id
                    and (self.docusign_private_key or self.docusign_private_key_file))

    @property
    def connect_hmac_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.docusign_connect_hmac_keys.split(",") if k.strip())

    @field_validator("database_url")
    @classmethod
    def _driver(cls, url: str) -> str:
        # Accept the URLs Heroku-style platforms hand out; we talk to PostgreSQL via psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @field_validator("slack_roles")
    @classmethod
    def _roles(cls, text: str) -> str:
        parse_role_grants(text)  # raises ValueError naming the bad part
        return text

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


ROLE_NAMES = ("rep", "manager", "finance", "admin")


def parse_role_grants(text: str) -> list[tuple[str, str]]:
    """'U01=rep;U02=finance,manager' -> [("U01", "rep"), ("U02", "finance"), ("U02", "manager")]"""
    grants = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        principal, _, roles = part.partition("=")
        principal = principal.strip()
        if not principal or not roles.strip():
            raise ValueError(f"role grant {part!r} must look like U0123=rep or S0456=finance,manager")
        for role in (r.strip() for r in roles.split(",")):
            if role not in ROLE_NAMES:
                raise ValueError(f"unknown role {role!r} in {part!r} (roles: {', '.join(ROLE_NAMES)})")
            grants.append((principal, role))
    return grants


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
