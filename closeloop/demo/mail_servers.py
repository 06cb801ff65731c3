"""Real mail servers on loopback for the demo, the tests and the benchmark: Dovecot
(Debian `dovecot-imapd`) or, where it is not installed, pymap (pure Python, from
PyPI) for IMAP; aiosmtpd for SMTP, with answers that can be scripted (4xx, 5xx,
refused recipients); and a TCP proxy whose connections can be cut mid-command.

Every server listens on 127.0.0.1 on a free port and is stopped by its process id."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USER, PASSWORD = "sales", "secret"

DOVECOT_CONF = """\
instance_name = dovecot-closeloop-@PORT@
base_dir = @ROOT@/run
state_dir = @ROOT@/state
log_path = @ROOT@/dovecot.log
info_log_path = @ROOT@/dovecot.log
debug_log_path = @ROOT@/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = @LOGIN_USER@
default_internal_user = @INTERNAL_USER@
default_internal_group = @INTERNAL_GROUP@
first_valid_uid = @MAIL_UID@
first_valid_gid = @MAIL_GID@
mail_uid = @MAIL_UID@
mail_gid = @MAIL_GID@
mail_location = maildir:@ROOT@/mail/%u
mail_home = @ROOT@/home/%u
mail_fsync = never
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u @ROOT@/users
}
userdb {
  driver = static
  args = uid=@MAIL_UID@ gid=@MAIL_GID@ home=@ROOT@/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = @PORT@
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
service doveadm {
  inet_listener {
    port = 0
  }
}
protocol imap {
  imap_idle_notify_interval = 2 mins
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot",) if os.path.exists(p)), None)


@dataclass
class ImapServer:
    """A running IMAP server with one user (USER/PASSWORD)."""

    host: str = "127.0.0.1"
    port: int = 0
    kind: str = ""
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def client(self):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Append messages as another mail client (or the MTA) would."""
        client = self.client()
        try:
            for raw in messages:
                client.append(folder, raw)
        finally:
            client.logout()

    def maildir(self, folder: str = "INBOX") -> Path:
        assert self.root is not None and self.kind == "dovecot"
        base = self.root / "mail" / USER
        return base if folder == "INBOX" else base / f".{folder}"

    def reset_uidvalidity(self, folder: str = "INBOX") -> None:
        """Renumber the mailbox as a server restored from backup would: a new
        UIDVALIDITY, every message with a new UID (Dovecot rebuilds its uid list)."""
        if self.kind != "dovecot":
            raise RuntimeError("UIDVALIDITY can only be reset on Dovecot here")
        self.stop_process()
        uidlist = self.maildir(folder) / "dovecot-uidlist"
        uidlist.unlink(missing_ok=True)
        for index in self.maildir(folder).glob("dovecot.index*"):
            index.unlink()
        time.sleep(1.1)  # Dovecot's new UIDVALIDITY is the current second: make it differ
        self._spawn()

    def stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def _spawn(self) -> None:
        assert self.root is not None
        self.process = subprocess.Popen([dovecot_binary() or "dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)


def start_dovecot() -> ImapServer:
    binary = dovecot_binary()
    if binary is None:
        raise RuntimeError("Dovecot is not installed (Debian: apt-get install dovecot-imapd; see scripts/services)")
    root = Path(tempfile.mkdtemp(prefix="closeloop-imap-"))
    os.chmod(root, 0o755)
    port = free_port()
    if os.geteuid() == 0:  # mail processes may not run as root
        import pwd
        nobody = pwd.getpwnam("nobody")
        mail_uid, mail_gid = nobody.pw_uid, nobody.pw_gid
        login, internal, group = "dovenull", "dovecot", "dovecot"
    else:
        import grp
        import pwd
        me = pwd.getpwuid(os.getuid())
        mail_uid, mail_gid = me.pw_uid, me.pw_gid
        login = internal = me.pw_name
        group = grp.getgrgid(me.pw_gid).gr_name
    conf = DOVECOT_CONF
    for name, value in {"@ROOT@": str(root), "@PORT@": str(port), "@MAIL_UID@": str(mail_uid),
                        "@MAIL_GID@": str(mail_gid), "@LOGIN_USER@": login, "@INTERNAL_USER@": internal,
                        "@INTERNAL_GROUP@": group}.items():
        conf = conf.replace(name, value)
    (root / "dovecot.conf").write_text(conf)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    os.chmod(root / "users", 0o644)
    for sub in ("mail", "home"):
        (root / sub / USER).mkdir(parents=True)
        for path in (root / sub, root / sub / USER):
            os.chown(path, mail_uid, mail_gid) if os.geteuid() == 0 else None
    server = ImapServer(port=port, kind="dovecot", root=root)
    server._spawn()
    return server


def start_pymap() -> ImapServer:
    """pymap's in-memory dict backend: for machines without Dovecot (the demo never needs apt)."""
    port = free_port()
    pymap = [sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())"]
    process = subprocess.Popen(
        pymap + ["--no-service", "admin", "--no-service", "managesieve", "--no-service", "swim",
                 "--host", "127.0.0.1", "--port", str(port), "dict", "--demo-user", USER,
                 "--demo-password", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = ImapServer(port=port, kind="pymap", process=process)
    wait_port(port, 20)
    return server


def start_imap(prefer: str = "dovecot") -> ImapServer:
    if prefer == "dovecot" and dovecot_binary():
        return start_dovecot()
    return start_pymap()


# --- SMTP -------------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class ScriptedSmtp:
    """aiosmtpd handler that stores what it accepts and answers as scripted:
    `on_data` is a queue of replies for the next DATA commands ("451 4.3.0 try later"),
    `refuse` maps recipients to the reply for their RCPT TO."""

    received: list[Received] = field(default_factory=list)
    on_data: deque[str] = field(default_factory=deque)
    refuse: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.on_data:
                return self.on_data.popleft()
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 2.0.0 queued"


class SmtpServer:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        self.handler = ScriptedSmtp()
        self.port = free_port()
        self.host = "127.0.0.1"
        self.controller = Controller(self.handler, hostname=self.host, port=self.port)
        self.controller.start()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        self.controller.stop()


# --- a proxy whose connections can be cut ----------------------------------------

class CutProxy:
    """TCP proxy 127.0.0.1:port -> target. `cut()` closes every open connection at
    once (client and server side), as a dropped network would."""

    def __init__(self, target_port: int, cut_after_bytes: int | None = None) -> None:
        self.target = target_port
        self.cut_after_bytes = cut_after_bytes  # cut once, after this much went to the client
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        self.bytes_to_client = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._conns += [client, upstream]
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, to_client: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if to_client:
                    self.bytes_to_client += len(chunk)
                    if self.cut_after_bytes is not None and self.bytes_to_client > self.cut_after_bytes:
                        self.cut_after_bytes = None
                        self.cut()
                        break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        self._listener.close()
