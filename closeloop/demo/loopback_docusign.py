"""A DocuSign-speaking server on 127.0.0.1 for the tests and the demo.

It serves TLS with a certificate made at start (IP SAN 127.0.0.1), because the SDK
always calls the OAuth host over https. It verifies the JWT grant's RS256 assertion
with the integration's public key, answers user info with one account whose base URI
is itself, and keeps envelopes in memory. Every request body is validated against the
official eSignature v2.1 OpenAPI definitions (an extract in `docusign/`, made by
scripts/extract_docusign_schemas.py), strictly: a property the spec does not define
is an error too, so a misspelt field cannot pass. Invalid bodies get DocuSign's 400
and are kept in `invalid` for the tests to assert on.

Faults: `drop_after_create = n` stores the next n envelopes and then closes the
connection without answering (the caller cannot know it was created);
`fill_tabs = False` hands back completed documents with their tabs left empty (what
a broken or forged completion would look like: the verifier must refuse it)."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ACCOUNT = "1f2e3d4c-0000-4000-8000-00000000a11c"
USER = "5a6b7c8d-0000-4000-8000-0000000005e4"
INTEGRATION_KEY = "c0ffee00-0000-4000-8000-000000000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rsa_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


_MADE: dict[str, tuple[bytes, bytes]] = {}


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made once per process (RSA key generation is slow)."""
    if "cert" not in _MADE:
        _MADE["cert"] = _make_certificate()
    cert_pem, key_pem = _MADE["cert"]
    cert_path, key_path = directory / "docusign-cert.pem", directory / "docusign-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _make_certificate() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback DocuSign")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _strict(node: Any) -> Any:
    """The spec's objects allow any extra property; ours do not (catches misspellings)."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


class SpecValidator:
    _loaded: SpecValidator | None = None

    @classmethod
    def shared(cls) -> SpecValidator:
        if cls._loaded is None:
            cls._loaded = cls()
        return cls._loaded

    def __init__(self) -> None:
        text = resources.files("closeloop.demo").joinpath("docusign/esignature-v2.1-extract.json").read_text("utf-8")
        extract = json.loads(text)
        self.operations: dict[str, str] = extract["operations"]
        self.definitions = _strict(extract["definitions"])

    def errors(self, operation: str, body: Any) -> list[str]:
        name = self.operations[operation]
        schema = {"definitions": self.definitions, "$ref": f"#/definitions/{name}"}
        validator = jsonschema.Draft4Validator(schema)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in validator.iter_errors(body)]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


@dataclass
class StoredEnvelope:
    envelope_id: str
    definition: dict[str, Any]
    status: str
    created: str
    status_changed: str
    resends: int = 0
    voided_reason: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def custom_fields(self) -> dict[str, str]:
        fields = (self.definition.get("customFields") or {}).get("textCustomFields") or []
        return {f.get("name"): f.get("value") for f in fields}

    @property
    def document(self) -> bytes:
        return base64.b64decode(self.definition["documents"][0]["documentBase64"])

    def summary(self, include_custom: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"envelopeId": self.envelope_id, "status": self.status,
                                "createdDateTime": self.created, "sentDateTime": self.created,
                                "statusChangedDateTime": self.status_changed,
                                "emailSubject": self.definition.get("emailSubject")}
        if include_custom:
            data["customFields"] = {"textCustomFields": [{"name": k, "value": v, "show": "false"}
                                                         for k, v in self.custom_fields.items()]}
        if self.status == "completed":
            data["completedDateTime"] = self.status_changed
        if self.voided_reason:
            data["voidedReason"] = self.voided_reason
        return data


class LoopbackDocuSign:
    def __init__(self, key_pem: bytes, *, integration_key: str = INTEGRATION_KEY, token_lifetime: int = 3600,
                 directory: Path | None = None) -> None:
        # the integration's public key (a private key PEM is accepted too: its public half is used)
        self.public_key = serialization.load_pem_public_key(public_pem(key_pem) if b"PRIVATE" in key_pem else key_pem)
        self.integration_key = integration_key
        self.token_lifetime = token_lifetime
        self.directory = directory or Path(tempfile.mkdtemp(prefix="loopback-docusign-"))
        self.cert_path, self._key_path = _certificate(self.directory)
        self.validator = SpecValidator.shared()
        self.envelopes: dict[str, StoredEnvelope] = {}
        self.tokens: set[str] = set()
        self.token_grants = 0
        self.requests: list[tuple[str, str]] = []
        self.invalid: list[tuple[str, list[str]]] = []
        self.drop_after_create = 0
        # Scripted faults for the next envelope creates, in order: "503" (refused, nothing
        # created), "500-after-create" (created, then a 500), "hang" (created, then no answer
        # for `hang_seconds`: the caller's timeout must fire).
        self.create_faults: list[str] = []
        self.hang_seconds = 60.0
        # Answers for the next status polls instead of the envelopes: (status, Retry-After or None).
        self.busy_polls: list[tuple[int, str | None]] = []
        self.fill_tabs = True
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> LoopbackDocuSign:
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self._key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="loopback-docusign", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_uri(self) -> str:
        return f"https://{self.host}"

    # --- what DocuSign's people and clocks do -----------------------------------------

    def set_status(self, envelope_id: str, status: str) -> StoredEnvelope:
        with self.lock:
            envelope = self.envelopes[envelope_id]
            envelope.status, envelope.status_changed = status, _now()
            envelope.history.append(status)
            return envelope

    def connect_body(self, envelope_id: str, status: str | None = None, *, generated: str | None = None) -> bytes:
        """A Connect JSON (SIM) notice for the envelope's current (or the given) status."""
        envelope = self.envelopes[envelope_id]
        summary = envelope.summary()
        if status is not None:
            summary["status"] = status
        summary["recipients"] = {"signers": [
            {"email": s.get("email"), "name": s.get("name"), "recipientId": s.get("recipientId"),
             "status": "completed" if summary["status"] == "completed" else "sent"}
            for s in envelope.definition["recipients"]["signers"]]}
        return json.dumps({
            "event": f"envelope-{summary['status']}", "apiVersion": "v2.1",
            "uri": f"/restapi/v2.1/accounts/{ACCOUNT}/envelopes/{envelope_id}", "retryCount": 0,
            "configurationId": 1, "generatedDateTime": generated or _now(),
            "data": {"accountId": ACCOUNT, "userId": USER, "envelopeId": envelope_id, "envelopeSummary": summary},
        }).encode()

    @staticmethod
    def sign(body: bytes, key: str) -> str:
        return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()

    # --- the API -------------------------------------------------------------------------

    def token(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(form.get("assertion", [""])[0], self.public_key, algorithms=["RS256"],
                                audience=self.host)
        except jwt.PyJWTError as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        if claims.get("iss") != self.integration_key or claims.get("sub") != USER:
            return 400, {"error": "invalid_grant", "error_description": "issuer or subject unknown"}
        if "signature" not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope"}
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens.add(token)
            self.token_grants += 1
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}

    def userinfo(self) -> tuple[int, Any]:
        return 200, {"sub": USER, "name": "Loopback Sender", "email": "sender@closeloop.example",
                     "accounts": [{"account_id": ACCOUNT, "is_default": True, "account_name": "Loopback",
                                   "base_uri": self.base_uri}]}

    def create(self, body: dict[str, Any]) -> tuple[int, Any]:
        errors = self.validator.errors("POST /v2.1/accounts/{accountId}/envelopes", body)
        if not errors:
            documents, signers = body.get("documents") or [], (body.get("recipients") or {}).get("signers") or []
            if len(documents) != 1 or not signers or body.get("status") != "sent":
                errors = ["closeloop sends one document, at least one signer, status 'sent'"]
            elif not base64.b64decode(documents[0].get("documentBase64", "")).startswith(b"%PDF-"):
                errors = ["documents/0/documentBase64 is not a PDF"]
        if errors:
            with self.lock:
                self.invalid.append(("create", errors))
            return 400, {"errorCode": "INVALID_REQUEST_BODY", "message": "; ".join(errors)[:500]}
        envelope = StoredEnvelope(str(uuid.uuid4()), copy.deepcopy(body), "sent", _now(), _now(), history=["sent"])
        with self.lock:
            self.envelopes[envelope.envelope_id] = envelope
        return 201, {"envelopeId": envelope.envelope_id, "status": "sent", "statusDateTime": envelope.created,
                     "uri": f"/envelopes/{envelope.envelope_id}"}

    def update(self, envelope_id: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, Any]:
        errors = self.validator.errors("PUT /v2.1/accounts/{accountId}/envelopes/{envelopeId}", body)
        if errors:
            with self.lock:
                self.invalid.append(("update", errors))
            return 400, {"errorCode": "INVALID_REQUEST_BODY", "message": "; ".join(errors)[:500]}
        envelope = self.envelopes.get(envelope_id)
        if envelope is None:
            return 404, {"errorCode": "ENVELOPE_DOES_NOT_EXIST", "message": "The envelope does not exist."}
        if query.get("resend_envelope", [""])[0] == "true":
            if envelope.status not in ("sent", "delivered"):
                return 400, {"errorCode": "ENVELOPE_INVALID_STATUS", "message": f"envelope is {envelope.status}"}
            envelope.resends += 1
            return 200, {"envelopeId": envelope_id}
        if body.get("status") == "voided":
            if envelope.status not in ("sent", "delivered", "created"):
                return 400, {"errorCode": "ENVELOPE_CANNOT_VOID_INVALID_STATE",
                             "message": f"Only envelopes in the 'Sent' or 'Delivered' states may be voided "
                                        f"(this one is {envelope.status})."}
            if not body.get("voidedReason"):
                return 400, {"errorCode": "INVALID_REQUEST_PARAMETER", "message": "voidedReason is required"}
            self.set_status(envelope_id, "voided").voided_reason = body["voidedReason"]
        return 200, {"envelopeId": envelope_id}

    def status_changes(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        ids = [i for i in query.get("envelope_ids", [""])[0].split(",") if i]
        custom = query.get("custom_field", [""])[0]
        if not ids and not query.get("from_date"):
            return 400, {"errorCode": "INVALID_REQUEST_PARAMETER",
                         "message": "from_date, envelope_ids or transaction_ids is required"}
        found = [e for e in self.envelopes.values() if not ids or e.envelope_id in ids]
        if custom:
            name, _, value = custom.partition("=")
            found = [e for e in found if e.custom_fields.get(name) == value]
        include_custom = "custom_fields" in query.get("include", [""])[0]
        items = [e.summary(include_custom) for e in found]
        return 200, {"envelopes": items, "resultSetSize": str(len(items)), "totalSetSize": str(len(items))}

    def document(self, envelope_id: str, document_id: str) -> tuple[int, Any]:
        envelope = self.envelopes.get(envelope_id)
        if envelope is None:
            return 404, {"errorCode": "ENVELOPE_DOES_NOT_EXIST", "message": "The envelope does not exist."}
        if document_id == "combined":
            return 200, completed_pdf(envelope, fill_tabs=self.fill_tabs)
        if document_id == "certificate":
            return 200, certificate_pdf(envelope)
        return 404, {"errorCode": "DOCUMENT_DOES_NOT_EXIST", "message": "no such document"}


def completed_pdf(envelope: StoredEnvelope, *, fill_tabs: bool = True) -> bytes:
    """What DocuSign's combined document of a completed envelope carries: the document
    as sent with "Docusign Envelope ID: …" stamped on every page, the tabs filled at
    their anchors (a drawn signature at /sn1/, the signer's full name at /fn1/, the
    date signed at /dt1/), and the certificate of completion appended."""
    import io

    import pdfplumber
    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter

    signer = envelope.definition["recipients"]["signers"][0]
    original = envelope.document
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(original)))
    with pdfplumber.open(io.BytesIO(original)) as plumber:
        anchors = [{w["text"]: (w["x0"], w["top"]) for w in page.extract_words() if w["text"] in _ANCHORS}
                   for page in plumber.pages]
    for index, page in enumerate(writer.pages):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        stamp = FPDF(unit="pt", format=(width, height))
        stamp.set_auto_page_break(False)
        stamp.add_page()
        stamp.set_font("Helvetica", size=8)
        stamp.set_xy(20, 6)
        stamp.cell(400, 12, f"Docusign Envelope ID: {envelope.envelope_id.upper()}")
        found = anchors[index] if fill_tabs else {}
        if "/sn1/" in found:  # the signature the signer adopted, drawn as DocuSign does
            x, y = found["/sn1/"]
            stamp.set_line_width(1.2)
            stamp.line(x + 10, y + 30, x + 50, y + 12)
            stamp.line(x + 50, y + 12, x + 80, y + 36)
            stamp.line(x + 80, y + 36, x + 140, y + 16)
        stamp.set_font("Helvetica", size=10)
        for anchor, text in (("/fn1/", str(signer.get("name") or "")), ("/dt1/", envelope.status_changed[:10])):
            if anchor in found:
                x, y = found[anchor]
                stamp.set_xy(x + 6, y + 4)
                stamp.cell(200, 12, _latin(text))
        page.merge_page(PdfReader(io.BytesIO(bytes(stamp.output()))).pages[0])
    writer.append(PdfReader(io.BytesIO(certificate_pdf(envelope))))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def certificate_pdf(envelope: StoredEnvelope) -> bytes:
    from fpdf import FPDF
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=14)
    pdf.cell(400, 20, "Certificate Of Completion", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.cell(400, 14, f"Envelope Id: {envelope.envelope_id.upper()}", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(400, 14, f"Status: {envelope.status.capitalize()}   Completed: {envelope.status_changed}")
    return bytes(pdf.output())


_ANCHORS = ("/sn1/", "/fn1/", "/dt1/")


def _latin(text: str) -> str:  # the core fonts are Latin-1; a signer's name outside it shows as "?"
    return text.encode("latin-1", "replace").decode("latin-1")


def _handler(docusign: LoopbackDocuSign) -> type[BaseHTTPRequestHandler]:
    prefix = f"/restapi/v2.1/accounts/{ACCOUNT}/envelopes"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = data if isinstance(data, bytes) else json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/pdf" if isinstance(data, bytes) else "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _authorized(self) -> bool:
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if token in docusign.tokens:
                return True
            self._send(401, {"errorCode": "AUTHORIZATION_INVALID_TOKEN",
                             "message": "The access token provided is expired, revoked or malformed."})
            return False

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            raw = self._body() if method in ("POST", "PUT") else b""
            with docusign.lock:
                docusign.requests.append((method, url.path))
            if method == "POST" and url.path == "/oauth/token":
                return self._send(*docusign.token(parse_qs(raw.decode())))
            if method == "GET" and url.path == "/oauth/userinfo":
                return self._send(*docusign.userinfo()) if self._authorized() else None
            if not url.path.startswith(prefix):
                return self._send(404, {"errorCode": "NOT_FOUND", "message": url.path})
            if not self._authorized():
                return None
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                return self._send(400, {"errorCode": "INVALID_REQUEST_BODY", "message": "not JSON"})
            parts = [p for p in url.path[len(prefix):].split("/") if p]
            if method == "POST" and not parts:
                with docusign.lock:
                    fault = docusign.create_faults.pop(0) if docusign.create_faults else None
                if fault == "503":
                    return self._send(503, {"errorCode": "SERVICE_UNAVAILABLE", "message": "try again later"})
                status, answer = docusign.create(body)
                if fault == "500-after-create":
                    return self._send(500, {"errorCode": "UNSPECIFIED_ERROR", "message": "internal error"})
                if fault == "hang":
                    time.sleep(docusign.hang_seconds)
                    self.close_connection = True
                    return None
                if status == 201 and docusign.drop_after_create > 0:
                    docusign.drop_after_create -= 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # created, but the caller never hears of it
                    return None
                return self._send(status, answer)
            if method == "GET" and not parts:
                busy = docusign.busy_polls.pop(0) if docusign.busy_polls else None
                if busy is not None:
                    status, retry_after = busy
                    return self._send(status, {"errorCode": "HOURLY_APIINVOCATION_LIMIT_EXCEEDED" if status == 429
                                               else "SERVICE_UNAVAILABLE", "message": "try again later"},
                                      {"Retry-After": retry_after} if retry_after is not None else None)
                return self._send(*docusign.status_changes(query))
            if method == "PUT" and len(parts) == 1:
                return self._send(*docusign.update(parts[0], query, body))
            if method == "GET" and len(parts) == 3 and parts[1] == "documents":
                return self._send(*docusign.document(parts[0], parts[2]))
            return self._send(404, {"errorCode": "NOT_FOUND", "message": url.path})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    return Handler
