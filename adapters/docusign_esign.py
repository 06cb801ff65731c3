"""DocuSign through the official SDK (docusign-esign): JWT grant, envelopes from the
quote PDF with anchor tabs, void, resend, status polling, signed documents.

The access token is cached and renewed a few minutes before it expires (and at once
after a 401); the account and its REST base come from user info unless configured.
Errors are sorted for the relay: 429 waits as told, other 4xx are permanent (a
retry sends the same bad request), 5xx (DocuSignUnavailable) and network errors are
retried."""
from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import docusign_esign as ds
from docusign_esign.client.api_exception import ApiException
from docusign_esign.client.api_response import RESTClientObject
from urllib3.util.retry import Retry

from adapters.esign_texts import envelope_texts
from flows.outbox import PermanentFailure, RetryAfter
from parsers.docusign_connect import docusign_time

log = logging.getLogger("closeloop.docusign")

T = TypeVar("T")
KEY_FIELD = "closeloop_key"  # the envelope custom field that carries our idempotency key
RENEW_BEFORE = 300  # seconds before expiry a token is renewed
TOKEN_LIFETIME = 3600
# DocuSign's anchor strings on the quote's signature block (rendered in white by the PDF).
ANCHORS = {"sign_here": "/sn1/", "date_signed": "/dt1/", "full_name": "/fn1/"}


class DocuSignUnavailable(Exception):
    """DocuSign answered 5xx: worth asking again later (the relay retries it like any
    other failure; the reconciler backs off). `retry_after`: seconds, when it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None, now: float) -> float | None:
    """An HTTP Retry-After value (seconds, or an HTTP date) as seconds from `now`."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class DocuSignConfig:
    integration_key: str
    user_id: str
    private_key: bytes
    oauth_host: str
    account_id: str | None = None
    base_path: str | None = None  # REST base ending in /restapi; None: from user info
    ca_cert: Path | None = None
    reminder_delay_days: int = 2
    reminder_frequency_days: int = 2
    expire_after_days: int = 30
    expire_warn_days: int = 3
    timeout_seconds: float = 30.0  # per request: a DocuSign that stops answering must not hold a worker


@dataclass(frozen=True)
class Envelope:
    envelope_id: str
    status: str
    status_at: datetime


@dataclass(frozen=True)
class EnvelopeRequest:
    key: str
    quote: str
    version: int
    customer: str
    language: str
    signer_email: str
    signer_name: str
    pdf: bytes


class _TimedRest(RESTClientObject):  # type: ignore[misc]
    """The SDK's REST client with a timeout on every request: the SDK's own default is
    none, so a DocuSign that accepts the connection and never answers would hold the
    worker until Celery's hard time limit."""

    def __init__(self, configuration: Any, seconds: float) -> None:
        super().__init__(configuration=configuration)
        self.seconds = seconds

    def request(self, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        # a (connect, read) pair: the SDK ignores a float given alone
        timeout = _request_timeout or (self.seconds, self.seconds)
        return super().request(*args, _request_timeout=timeout, **kwargs)


class DocuSign:
    def __init__(self, config: DocuSignConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._account: tuple[str, str] | None = None  # (account id, REST base)
        self._rest: ds.ApiClient | None = None

    # --- auth ---------------------------------------------------------------------

    def _api_client(self, host: str | None = None) -> ds.ApiClient:
        client = ds.ApiClient(host=host, oauth_host_name=self.config.oauth_host)
        configuration = ds.Configuration()
        if self.config.ca_cert is not None:  # the SDK reads its CA bundle from a Configuration at init
            configuration.ssl_ca_cert = str(self.config.ca_cert)
        client.rest_client = _TimedRest(configuration, self.config.timeout_seconds)
        # urllib3's default retries sleep in this thread for as long as a 429/503's
        # Retry-After says (the relay's or the reconciler's thread, for minutes): the
        # relay and the reconciler wait instead, without holding a thread.
        client.rest_client.pool_manager.connection_pool_kw["retries"] = Retry(3, respect_retry_after_header=False)
        return client

    def _authorized(self) -> tuple[ds.ApiClient, str]:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - RENEW_BEFORE:
                oauth = self._api_client()
                token = oauth.request_jwt_user_token(
                    client_id=self.config.integration_key, user_id=self.config.user_id,
                    oauth_host_name=self.config.oauth_host, private_key_bytes=self.config.private_key,
                    expires_in=TOKEN_LIFETIME, scopes=["signature", "impersonation"])
                self._token = token.access_token
                self._expires_at = now + int(token.expires_in or TOKEN_LIFETIME)
                if self._account is None:
                    self._account = self._resolve_account(oauth, token.access_token)
                    # one REST client for the process: its connection pool keeps TLS sessions open
                    self._rest = self._api_client(host=self._account[1])
                self._rest.set_default_header("Authorization", f"Bearer {self._token}")
            return self._rest, self._account[0]  # type: ignore[index]

    def _resolve_account(self, oauth: ds.ApiClient, token: str) -> tuple[str, str]:
        info = oauth.get_user_info(token)
        accounts = info.accounts or []
        wanted = self.config.account_id
        chosen = next((a for a in accounts if a.account_id == wanted), None) if wanted else \
            next((a for a in accounts if str(a.is_default).lower() == "true"), accounts[0] if accounts else None)
        if chosen is None:
            raise PermanentFailure(f"the DocuSign user has no account {wanted or ''}".strip())
        base = self.config.base_path or f"{chosen.base_uri.rstrip('/')}/restapi"
        return chosen.account_id, base

    def _call(self, what: str, call: Callable[[ds.ApiClient, str], T]) -> T:
        client, account_id = self._authorized()
        try:
            return call(client, account_id)
        except ApiException as error:
            status = int(error.status or 0)
            if status == 401:
                with self._lock:
                    self._token = None  # revoked or expired early: renew on the retry
                raise
            wait = retry_after((error.headers or {}).get("Retry-After"), self._clock())
            if status == 429:
                raise RetryAfter(60.0 if wait is None else wait, f"DocuSign: {what}: rate limited") from error
            if 400 <= status < 500:
                raise PermanentFailure(f"DocuSign refused {what}: {status} {_short(error.body)}") from error
            if status >= 500:
                raise DocuSignUnavailable(f"DocuSign: {what}: {status} {_short(error.body)}", wait) from error
            raise

    # --- envelopes --------------------------------------------------------------------

    def find_by_key(self, key: str, since: datetime) -> Envelope | None:
        """The envelope already created for our key (a retry after a crash), if any."""
        def search(client: ds.ApiClient, account_id: str) -> Any:
            return ds.EnvelopesApi(client).list_status_changes(
                account_id, custom_field=f"{KEY_FIELD}={key}", from_date=_iso(since), include="custom_fields")
        found = [e for e in (self._call("searching envelopes", search).envelopes or [])
                 if _custom_value(e) in (key, None)]
        live = [e for e in found if e.status != "voided"] or found
        return _envelope(live[0]) if live else None

    def create(self, request: EnvelopeRequest) -> str:
        texts = envelope_texts(request.language, quote=request.quote, version=request.version,
                               customer=request.customer)
        config = self.config
        signer = ds.Signer(
            email=request.signer_email, name=request.signer_name, recipient_id="1", routing_order="1",
            tabs=ds.Tabs(
                sign_here_tabs=[ds.SignHere(anchor_string=ANCHORS["sign_here"], anchor_units="pixels",
                                            anchor_x_offset="0", anchor_y_offset="0")],
                date_signed_tabs=[ds.DateSigned(anchor_string=ANCHORS["date_signed"], anchor_units="pixels",
                                                anchor_x_offset="0", anchor_y_offset="0")],
                full_name_tabs=[ds.FullName(anchor_string=ANCHORS["full_name"], anchor_units="pixels",
                                            anchor_x_offset="0", anchor_y_offset="0")]))
        definition = ds.EnvelopeDefinition(
            email_subject=texts.subject, email_blurb=texts.message, status="sent",
            documents=[ds.Document(document_base64=base64.b64encode(request.pdf).decode(),
                                   name=f"{request.quote} v{request.version}.pdf", file_extension="pdf",
                                   document_id="1")],
            recipients=ds.Recipients(signers=[signer]),
            custom_fields=ds.CustomFields(text_custom_fields=[
                ds.TextCustomField(name=KEY_FIELD, value=request.key, show="false", required="false")]),
            notification=ds.Notification(
                use_account_defaults="false",
                reminders=ds.Reminders(reminder_enabled=str(config.reminder_delay_days > 0).lower(),
                                       reminder_delay=str(config.reminder_delay_days),
                                       reminder_frequency=str(config.reminder_frequency_days)),
                expirations=ds.Expirations(expire_enabled="true", expire_after=str(config.expire_after_days),
                                           expire_warn=str(config.expire_warn_days))))

        def create(client: ds.ApiClient, account_id: str) -> Any:
            return ds.EnvelopesApi(client).create_envelope(account_id, envelope_definition=definition)
        return str(self._call("creating an envelope", create).envelope_id)

    def void(self, envelope_id: str, reason: str) -> None:
        def void(client: ds.ApiClient, account_id: str) -> Any:
            return ds.EnvelopesApi(client).update(account_id, envelope_id,
                                                  envelope=ds.Envelope(status="voided", voided_reason=reason[:200]))
        try:
            self._call(f"voiding {envelope_id}", void)
        except PermanentFailure:
            current = self.statuses([envelope_id])
            if current and current[0].status in ("voided", "completed", "declined", "expired"):
                log.info("envelope %s is already %s: nothing to void", envelope_id, current[0].status)
                return
            raise

    def resend(self, envelope_id: str) -> None:
        """DocuSign's resend: the signer gets the signing email again (a reminder)."""
        def resend(client: ds.ApiClient, account_id: str) -> Any:
            return ds.EnvelopesApi(client).update(account_id, envelope_id, resend_envelope="true",
                                                  envelope=ds.Envelope())
        self._call(f"resending {envelope_id}", resend)

    def statuses(self, envelope_ids: list[str]) -> list[Envelope]:
        def poll(client: ds.ApiClient, account_id: str) -> Any:
            return ds.EnvelopesApi(client).list_status_changes(account_id, envelope_ids=",".join(envelope_ids))
        return [_envelope(e) for e in (self._call("polling envelopes", poll).envelopes or [])]

    def documents(self, envelope_id: str) -> tuple[bytes, bytes]:
        """The combined signed PDF and the certificate of completion."""
        def fetch(document_id: str) -> Callable[[ds.ApiClient, str], Any]:
            return lambda client, account_id: ds.EnvelopesApi(client).get_document(account_id, document_id,
                                                                                   envelope_id)
        combined = self._call("downloading the signed PDF", fetch("combined"))
        certificate = self._call("downloading the certificate", fetch("certificate"))
        return _bytes(combined), _bytes(certificate)


def config_from_settings(settings: Any) -> DocuSignConfig:
    key = settings.docusign_private_key
    pem = key.encode() if key else Path(settings.docusign_private_key_file).read_bytes()
    return DocuSignConfig(
        integration_key=settings.docusign_integration_key, user_id=settings.docusign_user_id, private_key=pem,
        oauth_host=settings.docusign_oauth_host.removeprefix("https://").rstrip("/"),
        account_id=settings.docusign_account_id, base_path=settings.docusign_base_path,
        ca_cert=settings.docusign_ca_cert, reminder_delay_days=settings.docusign_reminder_delay_days,
        reminder_frequency_days=settings.docusign_reminder_frequency_days,
        expire_after_days=settings.docusign_expire_after_days, expire_warn_days=settings.docusign_expire_warn_days,
        timeout_seconds=settings.docusign_timeout_seconds)


def _custom_value(envelope: Any) -> str | None:
    fields = getattr(envelope, "custom_fields", None)
    for field in (getattr(fields, "text_custom_fields", None) or []):
        if field.name == KEY_FIELD:
            return str(field.value)
    return None


def _envelope(item: Any) -> Envelope:
    changed = item.status_changed_date_time or item.sent_date_time or item.created_date_time
    at = docusign_time(changed) if changed else datetime.now(timezone.utc)
    return Envelope(str(item.envelope_id), str(item.status).lower(), at)


def _iso(moment: datetime) -> str:
    return (moment - timedelta(minutes=5)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str) and Path(data).is_file():  # older SDKs wrote the file to a temp path
        return Path(data).read_bytes()
    raise PermanentFailure(f"DocuSign returned {type(data).__name__}, not the document's bytes")


def _short(body: Any) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return text[:300]
