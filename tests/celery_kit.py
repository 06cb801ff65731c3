"""Real Celery processes for the tests: `closeloop worker` and `closeloop beat` started
as subprocesses against the test's PostgreSQL database and a Redis database of this
pytest worker's own, exactly as the Procfile starts them. Redis must be running
(scripts/services starts it); the fixtures fail, never skip, when it is not."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from closeloop.config import Settings
from flows.outbox import OutboxMessage, OutboxStatus

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))


_REDIS_DB: int | None = None


def redis_url() -> str:
    """A Redis database of this test process's own, emptied first. Databases 1-15 are
    taken with a lock key in database 0 (held for an hour, renewed on each use), so test
    runs in other checkouts on the same Redis never consume each other's tasks."""
    import redis
    global _REDIS_DB
    owner = f"{os.uname().nodename}:{os.getpid()}"
    try:
        locks = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=3)
        if _REDIS_DB is None:
            for db in range(1, 16):
                if locks.set(f"closeloop-test-db:{db}", owner, nx=True, ex=3600):
                    _REDIS_DB = db
                    break
            else:
                pytest.fail("every Redis database 1-15 is taken by other closeloop test runs", pytrace=False)
        locks.set(f"closeloop-test-db:{_REDIS_DB}", owner, ex=3600)
        url = f"redis://127.0.0.1:6379/{_REDIS_DB}"
        redis.Redis.from_url(url, socket_timeout=3).flushdb()
    except redis.RedisError as error:
        pytest.fail(f"Redis is required on 127.0.0.1:6379 (scripts/services starts it): {error}", pytrace=False)
    return url


@pytest.fixture(scope="session", autouse=True)
def _release_redis_db() -> Iterator[None]:
    yield
    if _REDIS_DB is not None:
        import redis
        locks = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=3)
        if locks.get(f"closeloop-test-db:{_REDIS_DB}") == f"{os.uname().nodename}:{os.getpid()}".encode():
            locks.delete(f"closeloop-test-db:{_REDIS_DB}")


def amqp_url() -> str:
    """A RabbitMQ vhost per pytest-xdist worker, emptied (deleted and made again) first."""
    import kombu
    vhost = f"closeloop_test_{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
    for args in (["delete_vhost", vhost], ["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*",
                                                                 ".*"]):
        done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
        if done.returncode and args[0] != "delete_vhost":
            pytest.fail(f"RabbitMQ is required on 127.0.0.1:5672 (scripts/services starts it): {done.stderr}",
                        pytrace=False)
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with kombu.Connection(url, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)
    return url


def environment(settings: Settings, **extra: Any) -> dict[str, str]:
    """The settings as the environment variables a process reads them from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSELOOP_", "SLACK_", "DOCUSIGN_", "SMTP_",
                                                                      "IMAP_", "STRIPE_"))}
    env.pop("DATABASE_URL", None)
    values = settings.model_dump()
    for name in settings.model_fields_set:
        field = Settings.model_fields[name]
        value = values[name]
        if value is None:
            continue
        env[field.alias or name.upper()] = str(value)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Process:
    """One closeloop process, its output in a log file; `ready` is the line that says it is up."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.name, self.argv, self.env, self.log, self.ready = name, argv, env, log, ready
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Process:
        handle = self.log.open("ab")
        self.popen = subprocess.Popen([CLOSELOOP, *self.argv], env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready in self.log.read_text(errors="replace")[max(0, offset - 4096):]:
                return self
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool, with no goodbye."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def pool_pids(self) -> list[int]:
        """The pool's child processes (the ones that run tasks)."""
        out = subprocess.run(["pgrep", "-P", str(self.popen.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]


class CeleryRig:
    """Workers and a beat on one database and one broker; stops them all at the end."""

    def __init__(self, settings: Settings, folder: Path, **env: Any) -> None:
        self.settings, self.folder = settings, folder
        self.env = environment(settings, **env)
        self.processes: list[Process] = []

    def worker(self, queues: str = "control,slack,mail,pdf,billing,default", concurrency: int = 2,
               name: str | None = None) -> Process:
        name = name or f"worker{len(self.processes)}"
        process = Process(name, ["worker", "--queues", queues, "--concurrency", str(concurrency), "--name",
                                 f"{name}@test"], self.env, self.folder / f"{name}.log", " ready.")
        self.processes.append(process)
        return process.start()

    def beat(self) -> Process:
        process = Process("beat", ["beat"], self.env, self.folder / "beat.log", "beat: Starting")
        self.processes.append(process)
        return process.start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(p.log.read_text(errors="replace") for p in self.processes if p.log.exists())


def outbox(services: Any) -> Counter:
    """Outbox rows by status."""
    rows = services.ledger.read(lambda s: s.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    return Counter({status: n for status, n in rows})


def settled(services: Any) -> bool:
    """Nothing pending or leased: every message delivered or dead."""
    counts = outbox(services)
    return counts[OutboxStatus.PENDING] == 0 and counts[OutboxStatus.LEASED] == 0


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def pg_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """PostgreSQL settings (emptied) and a broker of this worker's own, short leases."""
    from tests.conftest import _truncate_postgres
    url = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return Settings(database_url=url, outbox_dir=tmp_path / "outbox", documents_dir=tmp_path / "documents",
                    data_dir=tmp_path / "data", broker_url=redis_url(), relay_lease_seconds=5,
                    dispatch_seconds=0.5, relay_poll_seconds=0.2)


@pytest.fixture
def rig(pg_settings: Settings, tmp_path: Path) -> Iterator[CeleryRig]:
    made = CeleryRig(pg_settings, tmp_path)
    yield made
    made.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, keeping nothing on disk:
    stopping it loses every queued task, as a broker restart does. Never the machine's
    shared Redis on 6379, which other tests use."""

    def __init__(self, folder: Path) -> None:
        from closeloop.demo.loopback_slack import free_port
        self.folder, self.port = folder, free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redis
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_until("the private redis-server", lambda: self._pings(client), timeout=20)
        return self

    def stop(self) -> None:
        """SIGKILL: nothing saved, every queued and unacknowledged task gone."""
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def client(self) -> Any:
        import redis
        return redis.Redis(port=self.port, socket_timeout=5)

    def flush(self) -> None:
        """Empty it, running (the crash sweep, between its phases)."""
        self.client().flushdb()

    def task_ids(self) -> set[str]:
        """The ids of the tasks the broker holds: queued (kombu's lists) or delivered and not
        yet acknowledged (its `unacked` hash)."""
        client, found = self.client(), set()
        for key in client.keys():
            kind = client.type(key)
            if kind == b"list":
                messages = [json.loads(item) for item in client.lrange(key, 0, -1)]
            elif kind == b"hash" and key == b"unacked":
                messages = [json.loads(item)[0] for item in client.hvals(key)]
            else:
                continue
            found.update(m["headers"]["id"] for m in messages if isinstance(m, dict) and "headers" in m)
        return found

    @staticmethod
    def _pings(client: Any) -> bool:
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001 — not up yet
            return False


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A broker of the test's own, which it may stop and start (the machine's Redis is
    shared with every other test run: never restarted)."""
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def private_settings(pg_settings: Settings, private_broker: PrivateRedis) -> Settings:
    return pg_settings.model_copy(update={"broker_url": private_broker.url})
