"""Every ledger test runs twice: on a SQLite file and on a real PostgreSQL server.

PostgreSQL: CLOSELOOP_TEST_POSTGRES_URL (default: the local server on 127.0.0.1:5432,
trust auth) is the admin connection; the suite creates its own database for the run
and drops it at the end. If the server cannot be reached the suite fails — it never
skips: a green run must mean both backends were tested."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from closeloop import migrate
from closeloop.bootstrap import Services, build
from closeloop.config import Settings
from flows.clock import ManualClock
from flows.models import Base

PG_ADMIN_URL = os.environ.get("CLOSELOOP_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
pytest_plugins = ["tests.docusign_peer", "tests.celery_kit"]  # loopback DocuSign; Celery processes


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"closeloop_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 — turn any connection problem into a clear failure
        pytest.fail(f"PostgreSQL is required and could not be reached at {PG_ADMIN_URL}: {error}\n"
                    "Start it (see README, 'Running the tests') or set CLOSELOOP_TEST_POSTGRES_URL.",
                    pytrace=False)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "closeloop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, outbox_dir=tmp_path / "outbox", documents_dir=tmp_path / "documents",
                    data_dir=tmp_path / "data")


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> Iterator[Services]:
    built = build(settings, clock)
    yield built
    built.close()


@pytest.fixture
def make_services(settings: Settings, clock: ManualClock) -> Iterator:
    """Another process's view of the same database: its own engine, ledger and relay."""
    made: list[Services] = []

    def make() -> Services:
        made.append(build(settings, clock))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def slack_api() -> Iterator:
    from tests.slack_peer import FakeSlackApi
    api = FakeSlackApi().start()
    yield api
    api.stop()


@pytest.fixture
def slack_settings(settings: Settings, slack_api) -> Settings:
    from tests.slack_peer import APP, SIGNING_SECRET, TEAM
    return settings.model_copy(update={
        "slack_bot_token": "xoxb-test", "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack_api.base_url, "slack_team_id": TEAM, "slack_app_id": APP,
        "slack_deals_channel": "C0DEALS", "host": "127.0.0.1"})


@pytest.fixture
def slack_services(slack_settings: Settings, clock: ManualClock) -> Iterator[Services]:
    built = build(slack_settings, clock)
    yield built
    built.close()


@pytest.fixture
def web(slack_services: Services) -> Iterator:
    """`closeloop web`'s WSGI app served by waitress on a free loopback port."""
    import threading

    from waitress.server import create_server

    from closeloop.web import web_app
    from tests.slack_peer import free_port

    server = create_server(web_app(slack_services), host="127.0.0.1", port=free_port(), threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="session")
def localstripe() -> Iterator:
    """localstripe (PyPI) on a free loopback port, for the whole run (billing-money)."""
    from tests.stripe_peer import LocalStripe
    server = LocalStripe().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_proxy(localstripe) -> Iterator:
    """A proxy in front of localstripe: key replay, dropped answers, Checkout Sessions."""
    from tests.stripe_peer import StripeProxy
    proxy = StripeProxy(localstripe.url).start()
    yield proxy
    proxy.stop()
