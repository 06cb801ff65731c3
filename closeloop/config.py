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
    port: int = Field(3000, alias="PORT")
    host: str = Field("0.0.0.0", alias="CLOSELOOP_HOST", description="address `closeloop web` listens on")

    # Email (the email agent). No mailbox configured: the watcher does nothing; no SMTP_HOST:
    # outgoing mail goes to the file sink.
    mailboxes: str = Field("", alias="CLOSELOOP_MAILBOXES",
                           description='"sales=imap://user:pass@host:143/INBOX;finance=imaps://…" (role=URL)')
    imap_host: str | None = Field(None, alias="IMAP_HOST", description="one mailbox without CLOSELOOP_MAILBOXES")
    imap_port: int = Field(993, alias="IMAP_PORT")
    imap_ssl: bool = Field(True, alias="IMAP_SSL")
    imap_username: str = Field("", alias="IMAP_USERNAME")
    imap_password: str = Field("", alias="IMAP_PASSWORD")
    imap_folder: str = Field("INBOX", alias="IMAP_FOLDER")
    imap_role: str = Field("sales", alias="IMAP_ROLE")
    imap_idle_seconds: float = Field(25 * 60, alias="CLOSELOOP_IMAP_IDLE_SECONDS", gt=0, le=29 * 60,
                                     description="re-IDLE this often (RFC 2177: servers may drop us at 30 min)")
    imap_backoff_max_seconds: float = Field(300, alias="CLOSELOOP_IMAP_BACKOFF_MAX_SECONDS", gt=0)
    imap_batch: int = Field(200, alias="CLOSELOOP_IMAP_BATCH", ge=1, le=5000)
    mail_parse_workers: int = Field(1, alias="CLOSELOOP_MAIL_PARSE_WORKERS", ge=1, le=64,
                                    description="processes parsing fetched mail (the CPU-bound part)")
    mail_from: str = Field("sales@closeloop.invalid", alias="CLOSELOOP_MAIL_FROM")
    mail_company: str = Field("closeloop", alias="CLOSELOOP_COMPANY_NAME", description="signs customer mail")
    mail_reply_to: str | None = Field(None, alias="CLOSELOOP_MAIL_REPLY_TO",
                                      description="base of the tokened Reply-To (default: the From address)")
    mail_secret: str | None = Field(None, alias="CLOSELOOP_MAIL_SECRET",
                                    description="HMAC key of the deal token in Reply-To (default: generated once)")
    mail_secret_file: Path = Field(Path("closeloop-mail.secret"), alias="CLOSELOOP_MAIL_SECRET_FILE")
    mail_authserv_id: str | None = Field(None, alias="CLOSELOOP_MAIL_AUTHSERV_ID",
                                         description="our receiving server's Authentication-Results id")
    mail_dkim_dns: bool = Field(False, alias="CLOSELOOP_MAIL_DKIM_DNS",
                                description="verify DKIM via DNS when no trusted Authentication-Results")
    mail_max_attachment_mb: int = Field(20, alias="CLOSELOOP_MAIL_MAX_ATTACHMENT_MB", ge=1)
    mail_max_parts: int = Field(100, alias="CLOSELOOP_MAIL_MAX_PARTS", ge=1)
    mail_max_depth: int = Field(10, alias="CLOSELOOP_MAIL_MAX_DEPTH", ge=1)
    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int = Field(587, alias="SMTP_PORT")
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(True, alias="SMTP_STARTTLS")
    smtp_timeout: float = Field(30, alias="SMTP_TIMEOUT")
    smtp_fallback_host: str | None = Field(None, alias="SMTP_FALLBACK_HOST")
    smtp_fallback_port: int = Field(587, alias="SMTP_FALLBACK_PORT")
    smtp_fallback_username: str | None = Field(None, alias="SMTP_FALLBACK_USERNAME")
    smtp_fallback_password: str | None = Field(None, alias="SMTP_FALLBACK_PASSWORD")
    smtp_fallback_starttls: bool = Field(True, alias="SMTP_FALLBACK_STARTTLS")
    smtp_fallback_after: int = Field(3, alias="SMTP_FALLBACK_AFTER", ge=1,
                                     description="consecutive primary failures before the fallback relay is used")
    slack_triage_channel: str | None = Field(None, alias="SLACK_TRIAGE_CHANNEL",
                                             description="unmatched mail is listed here (default: the deals channel)")

    @property
    def mail_domain(self) -> str:
        """The domain of our Message-IDs."""
        return self.mail_from.rpartition("@")[2] or "closeloop.invalid"

    def mail_token_secret(self) -> str:
        """The configured secret, or one generated on first use and kept in a file."""
        if self.mail_secret:
            return self.mail_secret
        path = self.mail_secret_file
        if path.exists():
            return path.read_text().strip()
        import secrets
        value = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        path.chmod(0o600)
        return value

    def mailbox_urls(self) -> list[tuple[str, str]]:
        """[(role, imap URL)] from CLOSELOOP_MAILBOXES, or the single IMAP_* mailbox."""
        found = []
        for part in filter(None, (p.strip() for p in self.mailboxes.split(";"))):
            role, sep, url = part.partition("=")
            if not sep or not url.startswith(("imap://", "imaps://")):
                raise ValueError(f"mailbox {part!r} must look like sales=imap://user:pass@host:143/INBOX")
            found.append((role.strip(), url.strip()))
        if not found and self.imap_host:
            from urllib.parse import quote
            scheme = "imaps" if self.imap_ssl else "imap"
            found.append((self.imap_role, f"{scheme}://{quote(self.imap_username, safe='')}:"
                                          f"{quote(self.imap_password, safe='')}@{self.imap_host}:{self.imap_port}/"
                                          f"{quote(self.imap_folder, safe='')}"))
        return found

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

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
