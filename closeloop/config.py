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
    # Production on Celery (closeloop/celery_app.py). The visibility timeout is how long the
    # broker waits for an unacknowledged task before delivering it again: longer than any
    # task may run (the hard time limit below), and there are no countdowns at all.
    broker_url: str | None = Field(None, alias="BROKER_URL",
                                   description="redis://… or amqp://…; unset: the embedded process does it all")
    celery_visibility_seconds: int = Field(3600, alias="CLOSELOOP_CELERY_VISIBILITY_SECONDS", ge=60)
    celery_task_seconds: int = Field(300, alias="CLOSELOOP_CELERY_TASK_SECONDS", ge=5,
                                     description="hard time limit of one task (below the visibility timeout)")
    dispatch_seconds: float = Field(1.0, alias="CLOSELOOP_DISPATCH_SECONDS", gt=0,
                                    description="how often the beat hands due outbox messages to the queues")
    dispatch_in_flight: int = Field(200, alias="CLOSELOOP_DISPATCH_IN_FLIGHT", ge=1,
                                    description="outbox messages handed to the queues and not yet delivered, at most")
    money_tick_seconds: float = Field(3600, alias="CLOSELOOP_MONEY_TICK_SECONDS", gt=0,
                                      description="how often charges start, unknown ones resolve, collections run")
    ledger_concurrency: int = Field(4, alias="CLOSELOOP_LEDGER_CONCURRENCY", ge=1, le=64,
                                    description="threads of one process inside the ledger at once")
    discount_approval_percent: int = Field(15, alias="CLOSELOOP_DISCOUNT_APPROVAL_PERCENT", ge=0, le=100,
                                           description="discounts above this need a manager's approval")
    # Completeness gaps: thresholds per rule (defaults in flows/gaps.py), the daily digest's time.
    gap_thresholds: str = Field("", alias="CLOSELOOP_GAP_THRESHOLDS",
                                description='overrides, e.g. "quote-unsigned=10;invoice-overdue=3"')
    digest_time: str = Field("08:00", alias="CLOSELOOP_DIGEST_TIME", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                             description="when the gap digest is posted, HH:MM in CLOSELOOP_TIMEZONE")
    scheduler_seconds: float = Field(300, alias="CLOSELOOP_SCHEDULER_SECONDS", gt=0,
                                     description="how often `closeloop run` ticks the digest step")

    # Reading PDFs (adapters/pdf_sandbox.py): each read runs in a child process within these limits.
    pdf_timeout_seconds: float = Field(20.0, alias="CLOSELOOP_PDF_TIMEOUT_SECONDS", gt=0, le=600)
    pdf_memory_mb: int = Field(1024, alias="CLOSELOOP_PDF_MEMORY_MB", ge=128, le=65536)
    pdf_max_bytes: int = Field(50 << 20, alias="CLOSELOOP_PDF_MAX_BYTES", ge=1024,
                               description="larger files are refused before anything parses them")

    # Billing core: invoicing mode, the billing run, signed license keys and their provisioning.
    invoicing: str = Field("internal", alias="CLOSELOOP_INVOICING", pattern="^(internal|external)$",
                           description="external: the accounting system issues invoices; closeloop links them")
    billing_max_invoices_per_day: int = Field(3, alias="CLOSELOOP_BILLING_MAX_INVOICES_PER_DAY", ge=1,
                                              description="more for one subscription in a day: it is parked")
    billing_tick_seconds: float = Field(3600, alias="CLOSELOOP_BILLING_TICK_SECONDS", gt=0,
                                        description="how often the embedded process runs the billing tick")
    data_dir: Path = Field(Path("closeloop-data"), alias="CLOSELOOP_DATA_DIR",
                           description="embedded mode's own files (the generated license signing key)")
    license_signing_key: str | None = Field(None, alias="CLOSELOOP_LICENSE_SIGNING_KEY",
                                            description="Ed25519 private key, PEM (PKCS#8)")
    license_signing_key_file: Path | None = Field(None, alias="CLOSELOOP_LICENSE_SIGNING_KEY_FILE")
    license_webhook_url: str | None = Field(None, alias="CLOSELOOP_LICENSE_WEBHOOK_URL",
                                            description="the product's provisioning endpoint (unset: file sink)")
    license_webhook_secret: str | None = Field(None, alias="CLOSELOOP_LICENSE_WEBHOOK_SECRET")
    license_webhook_timeout: float = Field(10, alias="CLOSELOOP_LICENSE_WEBHOOK_TIMEOUT", gt=0)

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
    # The seller on quotes and invoices (the documents issue); the defaults suit the embedded demo.
    company_name: str = Field("closeloop demo company", alias="CLOSELOOP_COMPANY_NAME")
    company_address: str = Field("", alias="CLOSELOOP_COMPANY_ADDRESS", description='lines separated by ";"')
    company_country: str = Field("DE", alias="CLOSELOOP_COMPANY_COUNTRY", description="ISO 3166-1 alpha-2")
    company_vat_id: str | None = Field(None, alias="CLOSELOOP_COMPANY_VAT_ID")
    company_iban: str | None = Field(None, alias="CLOSELOOP_COMPANY_IBAN")
    company_bic: str | None = Field(None, alias="CLOSELOOP_COMPANY_BIC")
    company_email: str | None = Field(None, alias="CLOSELOOP_COMPANY_EMAIL")
    company_logo: Path | None = Field(None, alias="CLOSELOOP_COMPANY_LOGO", description="PNG or JPEG path")
    documents_dir: Path = Field(Path("closeloop-documents"), alias="CLOSELOOP_DOCUMENTS_DIR",
                                description="where rendered invoice and quote PDFs are kept")
    # Money (charges and collections). The manual gateway (bank transfer) needs no account.
    gateway: str = Field("manual", alias="CLOSELOOP_GATEWAY", pattern="^(manual|stripe)$",
                         description="manual (bank transfer) or stripe")
    stripe_api_key: str | None = Field(None, alias="STRIPE_API_KEY")
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE", description="e.g. a loopback localstripe")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_timeout_seconds: float = Field(30.0, alias="STRIPE_TIMEOUT_SECONDS", gt=0)
    stripe_return_url: str = Field("https://closeloop.invalid/paid", alias="STRIPE_CHECKOUT_RETURN_URL")
    charge_retry_days: str = Field("1,3,5,7", alias="CLOSELOOP_CHARGE_RETRY_DAYS",
                                   description="soft declines retried this many days after the first")
    reminder_days_before: int = Field(5, alias="CLOSELOOP_REMINDER_DAYS_BEFORE", ge=0, le=60)
    overdue_ladder: str = Field("1,7,14,30", alias="CLOSELOOP_OVERDUE_LADDER", description="days past due")
    suspend_over: str = Field("", alias="CLOSELOOP_SUSPEND_OVER",
                              description='suspend licenses from this overdue balance, e.g. "EUR=500.00,USD=500.00"')
    suspend_after_days: int = Field(30, alias="CLOSELOOP_SUSPEND_AFTER_DAYS", ge=0)
    late_fee_percent: str | None = Field(None, alias="CLOSELOOP_LATE_FEE_PERCENT", description="off when unset")
    bank_details: str = Field("Bank transfer: ask finance for our account details", alias="CLOSELOOP_BANK_DETAILS")
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
    docusign_timeout_seconds: float = Field(30.0, alias="DOCUSIGN_TIMEOUT_SECONDS", gt=0, le=600,
                                            description="connect and read timeout of each DocuSign request")
    esign_reconcile_minutes: int = Field(30, alias="CLOSELOOP_ESIGN_RECONCILE_MINUTES", ge=1,
                                         description="poll envelopes still open after this long")
    esign_reconcile_tick_seconds: float = Field(300, alias="CLOSELOOP_ESIGN_RECONCILE_TICK_SECONDS", gt=0,
                                                description="how often the embedded process runs the reconciler")
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

    @field_validator("company_logo")
    @classmethod
    def _logo(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"CLOSELOOP_COMPANY_LOGO {path} is not a file")
        return path
    @field_validator("charge_retry_days", "overdue_ladder")
    @classmethod
    def _days(cls, text: str) -> str:
        parse_days(text)
        return text

    @field_validator("suspend_over")
    @classmethod
    def _thresholds(cls, text: str) -> str:
        parse_thresholds(text)
        return text

    @field_validator("late_fee_percent")
    @classmethod
    def _percent(cls, text: str | None) -> str | None:
        if text:
            from decimal import Decimal, InvalidOperation
            try:
                value = Decimal(text)
            except InvalidOperation:
                raise ValueError(f"late fee {text!r} must be a percentage such as 1.5") from None
            if not 0 < value <= 100:
                raise ValueError(f"late fee {text!r} must be above 0 and at most 100")
        return text

    @field_validator("slack_roles")
    @classmethod
    def _roles(cls, text: str) -> str:
        parse_role_grants(text)  # raises ValueError naming the bad part
        return text

    @field_validator("gap_thresholds")
    @classmethod
    def _gap_thresholds(cls, text: str) -> str:
        from flows.errors import InvalidInput
        from flows.gaps import GapPolicy, parse_thresholds
        try:
            GapPolicy(overrides=parse_thresholds(text))
        except InvalidInput as error:
            raise ValueError(str(error)) from None
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


def parse_days(text: str) -> tuple[int, ...]:
    """'1,3,5,7' -> (1, 3, 5, 7): increasing whole days; '' -> ()."""
    try:
        days = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"{text!r} must be whole days separated by commas, e.g. 1,3,5,7") from None
    if any(d < 0 for d in days) or list(days) != sorted(set(days)):
        raise ValueError(f"{text!r} must be increasing, non-negative days, e.g. 1,3,5,7")
    return days


def parse_thresholds(text: str) -> dict[str, int]:
    """'EUR=500.00,USD=500.00' -> {"EUR": 50000, "USD": 50000} (minor units)."""
    from flows.money import Money

    thresholds = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        currency, _, amount = part.partition("=")
        try:
            thresholds[currency.strip()] = Money.parse(amount.strip(), currency.strip()).amount
        except Exception as error:  # noqa: BLE001 — say which part is wrong
            raise ValueError(f"threshold {part!r} must look like EUR=500.00: {error}") from None
    return thresholds


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
