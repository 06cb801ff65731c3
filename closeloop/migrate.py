"""Schema migrations (Alembic), run from the CLI or at start-up of the embedded mode."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "closeloop:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_MIGRATION_LOCK = 7_311_001  # pg_advisory_lock key: one migrator at a time


def upgrade(url: str) -> None:
    """Migrate to head. On PostgreSQL under an advisory lock, so two processes started
    together (two releases, a release and a demo) migrate one after the other."""
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(url), "head")
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(url), "head")
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
