"""Real Celery processes for the tests: `closeloop worker` and `closeloop beat` started
as subprocesses against the test's PostgreSQL database and a Redis database of this
pytest worker's own, exactly as the Procfile starts them. Redis must be running
(scripts/services starts it); the fixtures fail, never skip, when it is not."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from closeloop.config import Settings

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))


def redis_url() -> str:
    """A Redis database per pytest-xdist worker (gw0 -> 1, gw1 -> 2, …), emptied first."""
    import redis
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = f"redis://127.0.0.1:6379/{1 + int(worker.removeprefix('gw') or 0) % 15}"
    try:
        redis.Redis.from_url(url, socket_timeout=3).flushdb()
    except redis.RedisError as error:
        pytest.fail(f"Redis is required on 127.0.0.1:6379 (scripts/services starts it): {error}", pytrace=False)
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

    @staticmethod
    def _pings(client: Any) -> bool:
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001 — not up yet
            return False


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A broker no other pytest session shares: the machine's Redis databases are per
    xdist worker name, and two sessions on one machine (gw0 each) would share db 1 and
    run each other's tasks."""
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def private_settings(pg_settings: Settings, private_broker: PrivateRedis) -> Settings:
    return pg_settings.model_copy(update={"broker_url": private_broker.url})
