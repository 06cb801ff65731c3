"""Many rows in one statement, straight to the database driver.

At IMAP FETCH rates SQLAlchemy's per-row parameter handling costs more than the
INSERT itself; these helpers run each column's own bind processing (so values are
stored exactly as the ORM would store them) and hand the driver one executemany."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import LargeBinary, Table
from sqlalchemy.engine import Connection


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], **same: Any) -> None:
    """INSERT every row (all with the same keys) with one executemany; `same`: the
    columns every row shares, bound once."""
    if not rows:
        return
    names = list(rows[0])
    process = [_processor(connection, table, name) for name in names]
    constant = tuple(bind(connection, table, name, value) for name, value in same.items())
    values = [tuple(p(row[n]) if p else row[n] for n, p in zip(names, process)) + constant for row in rows]
    columns = ", ".join([*names, *same])
    marks = ", ".join(_mark(connection, table, name) for name in [*names, *same])
    # psycopg sends an executemany as one pipeline: no round trip per row.
    connection.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", values)


def bind(connection: Connection, table: Table, name: str, value: Any) -> Any:
    """One value as the driver receives it for that column."""
    process = _processor(connection, table, name)
    return process(value) if process else value


def _processor(connection: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    dialect = connection.dialect
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]


def _mark(connection: Connection, table: Table, name: str) -> str:
    if connection.dialect.name != "postgresql":
        return "?"
    # Bytes go to PostgreSQL in binary (psycopg's %b): as text a bytea is escaped to twice its size.
    return "%b" if isinstance(table.c[name].type, LargeBinary) else "%s"
