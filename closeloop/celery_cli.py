"""`closeloop worker` and `closeloop beat`: the Celery processes of the production shape."""
from __future__ import annotations

import fcntl
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from closeloop.config import Settings, load_settings
from closeloop.respawn import keep_running

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker import WorkController

DEFAULT_QUEUES = "control,slack,mail,billing,default"
_BEAT_LOCK = 7_311_002  # pg_advisory_lock key held by the one beat


def _celery_settings() -> Settings:
    from closeloop import logs
    logs.setup(verbose=True, json_lines=True)
    try:
        settings = load_settings()
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None
    if not settings.broker_url:
        raise click.ClickException("BROKER_URL is not set (redis://127.0.0.1:6379/0 or amqp://…): without a broker, "
                                   "`closeloop run` does everything in one process")
    return settings


@click.command("worker")
@click.option("--queues", "-Q", default=DEFAULT_QUEUES, show_default=True,
              help="queues to consume (control, slack, mail, pdf, billing, default)")
@click.option("--concurrency", "-c", type=int, default=None, help="worker processes (default: one per core)")
@click.option("--name", "-n", default=None, help="node name (default: closeloop-<queues>@<host>)")
def worker_command(queues: str, concurrency: int | None, name: str | None) -> None:
    """A Celery worker: delivers the outbox messages of its queues and runs the beat's ticks."""
    _celery_settings()
    from closeloop.celery_app import QUEUES, app
    unknown = sorted(set(queues.split(",")) - set(QUEUES))
    if unknown:
        raise click.ClickException(f"unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(QUEUES)}")
    argv = ["worker", "--queues", queues, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "--hostname", name or f"closeloop-{queues.replace(',', '-')}@{socket.gethostname()}"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    raise SystemExit(keep_running("the Celery worker", lambda: _run_worker(app, argv)))


def _run_worker(app: Celery, argv: list[str]) -> int | None:
    """Celery's worker; returns its exit code when it stopped on its own, 0 when it was
    asked to (Celery exits 1 after Ctrl-C or SIGQUIT, which must not start it again).
    The code is read from the worker itself: `app.start` loses it (click hands back None
    even after "Unrecoverable error")."""
    from celery import signals
    workers: list[WorkController] = []
    asked_to_stop: list[str] = []

    def remember(sender: WorkController, **_: object) -> None:
        workers.append(sender)

    def stopping(sig: str, **_: object) -> None:
        asked_to_stop.append(sig)
    signals.worker_init.connect(remember, weak=False)
    signals.worker_shutting_down.connect(stopping, weak=False)
    code = app.start(argv)
    if asked_to_stop:
        return 0
    return workers[-1].exitcode if workers else code


@click.command("beat")
def beat_command() -> None:
    """The one beat: sends the outbox dispatch and the ticks of closeloop/schedule.py on time.
    A second beat started by mistake waits, as a standby, until the first is gone."""
    settings = _celery_settings()
    from closeloop.celery_app import app
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    def run() -> None:
        with _only_beat(settings):
            app.Beat(loglevel="INFO", schedule=str(settings.data_dir / "celerybeat-schedule")).run()
    raise SystemExit(keep_running("the beat", run))


class _only_beat:
    """Hold a lock for the beat's lifetime: a PostgreSQL advisory lock (so one beat per
    database, whatever machine it runs on), or a file lock beside an SQLite database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> None:
        url = self.settings.database_url
        if url.startswith("postgresql"):
            self._engine = create_engine(url, poolclass=NullPool)
            self._connection = self._engine.connect()
            if not self._connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _BEAT_LOCK}).scalar():
                click.echo("another beat holds the schedule for this database; standing by until it stops")
                self._connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _BEAT_LOCK})
        else:
            path = Path(self.settings.data_dir) / "beat.lock"
            self._file = path.open("w")
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                click.echo("another beat holds the schedule; standing by until it stops")
                fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "_connection"):
            self._connection.close()
            self._engine.dispose()
        else:
            self._file.close()
