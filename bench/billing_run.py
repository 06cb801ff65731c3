"""The billing run for many active subscriptions on PostgreSQL, beside the bare insert
rate of the same rows.

In a temporary PostgreSQL database this seeds N active monthly subscriptions (one deal
each, anchors spread over four weeks, every one with exactly one period due today),
then measures, in the same run and on the same engine:

  * baseline: the same number of invoices and invoice lines (the rows the run writes
    for its invoices) inserted bare, in transactions of the same batch size, into
    copies of the two tables (`CREATE TABLE … (LIKE … INCLUDING ALL)`: same indexes);
  * the billing run (`flows.billing_run.run_billing`): invoices, lines and periods with
    ON CONFLICT DO NOTHING, one block of gapless numbers per batch, subscriptions moved
    on, an event and two outbox rows (`invoice.deliver`, `payment.collect`) per invoice;
  * the same run again for the same day: must create nothing.

Targets (read by people, not asserted): run rate >= 25% of the bare rate; re-run < 10%
of the first run's time.

    .venv/bin/python -m bench.billing_run [--subscriptions 100000] [--batch 2000]

Exits non-zero only when something is wrong (PostgreSQL unreachable, a count off)."""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import MetaData, Table, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from closeloop import migrate
from closeloop.bootstrap import build
from closeloop.config import Settings
from flows.billing import SubscriptionPeriod
from flows.billing_run import run_billing
from flows.catalog import Sku
from flows.catalog_file import read_catalog
from flows.clock import SystemClock
from flows.invoices import Invoice, InvoiceLine
from flows.steps import load_catalog

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CATALOG = """
currencies = ["EUR"]
[tax_categories]
standard = "20"
[[sku]]
code = "SEAT"
name = "Pro seat"
kind = "recurring"
unit = "seat"
interval = "month"
licensable = true
tax_category = "standard"
prices = { EUR = "40.00" }
"""


def seed(engine, ledger, n: int, today: date) -> None:
    ledger.run(load_catalog, read_catalog(CATALOG, "bench"), source="bench")
    now = datetime.now(timezone.utc)
    md = MetaData()
    customers, contacts, deals, subs = (Table(t, md, autoload_with=engine)
                                        for t in ("customers", "contacts", "deals", "subscriptions"))
    with engine.begin() as c:
        sku = c.execute(select(Sku.id)).scalar_one()
        n_customers = max(1, n // 10)
        c.execute(insert(customers), [{"name": f"Customer {i}", "country": "DE", "language": "de",
                                       "currency": "EUR", "created_at": now} for i in range(n_customers)])
        first_customer = c.execute(select(func.min(customers.c.id))).scalar_one()
        c.execute(insert(contacts), [{"customer_id": first_customer + i, "name": "Billing", "role": "billing",
                                      "email": f"billing{i}@example.com"} for i in range(n_customers)])
        for start in range(0, n, 20000):
            rows = range(start, min(n, start + 20000))
            c.execute(insert(deals), [{"customer_id": first_customer + i % n_customers, "owner": "bench",
                                       "stage": "billing_active", "currency": "EUR", "amount": 48000,
                                       "origin_key": f"bench:{i}", "created_at": now, "stage_changed_at": now}
                                      for i in rows])
        first_deal = c.execute(select(func.min(deals.c.id))).scalar_one()
        for start in range(0, n, 20000):
            batch = []
            for i in range(start, min(n, start + 20000)):
                anchor = today - relativedelta(months=1) - timedelta(days=i % 28)
                batch.append({"deal_id": first_deal + i, "customer_id": first_customer + i % n_customers,
                              "sku_id": sku, "quantity": Decimal(10), "unit_amount": 4000, "tax_rate_bp": 2000,
                              "currency": "EUR", "interval": "month", "anchor": anchor, "status": "active",
                              "started_at": now, "ends_on": None, "next_index": 1,
                              "next_start": anchor + relativedelta(months=1), "payment_terms_days": 30,
                              "description": "Pro seat", "credit": 0, "billed_on": None, "billed_today": 0})
            c.execute(insert(subs), batch)
        c.execute(text("ANALYZE"))


def bare_inserts(engine, n: int, batch: int, today: date) -> float:
    """The same invoices and lines, plainly inserted, batch by batch, each batch one transaction."""
    with engine.begin() as c:
        for name in ("invoices", "invoice_lines"):
            c.execute(text(f"CREATE TABLE bench_{name} (LIKE {name} INCLUDING ALL)"))
    md = MetaData()
    invoices, lines = (Table(f"bench_{t}", md, autoload_with=engine) for t in ("invoices", "invoice_lines"))
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    for start in range(0, n, batch):
        rows = range(start, min(n, start + batch))
        with engine.begin() as c:
            ids = c.execute(insert(invoices).returning(invoices.c.id), [{
                "deal_id": None, "customer_id": 1, "purpose_key": f"bench:{i}", "status": "issued",
                "currency": "EUR", "net": 40000, "tax": 8000, "amount_paid": 0, "series": "B", "sequence": i + 1,
                "number": f"B-{i + 1:06d}", "payment_terms_days": 30, "created_at": now, "issued_at": now,
                "due_on": today + timedelta(days=30)} for i in rows]).scalars().all()
            c.execute(insert(lines), [{
                "invoice_id": ident, "position": 1, "sku_id": None, "description": "Pro seat", "quantity": 10,
                "unit_amount": 4000, "tax_rate_bp": 2000, "net": 40000, "period_start": today,
                "period_end": today + timedelta(days=30)} for ident in ids])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--pg-admin-url", default=os.environ.get("CLOSELOOP_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL))
    args = parser.parse_args()
    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"closeloop_bench_billing_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 — say what is missing and stop
        print(f"PostgreSQL is required at {args.pg_admin_url}: {error}", file=sys.stderr)
        return 1
    url = make_url(args.pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        services = build(Settings(database_url=url, outbox_dir=f"/tmp/{name}-outbox"), SystemClock())
        engine, ledger, n = services.engine, services.ledger, args.subscriptions
        today = datetime.now(timezone.utc).date()
        t0 = time.perf_counter()
        seed(engine, ledger, n, today)
        print(f"seeded {n} active subscriptions in {time.perf_counter() - t0:.1f} s "
              f"(PostgreSQL, batch {args.batch})")
        bare = bare_inserts(engine, n, args.batch, today)
        started = time.perf_counter()
        first = run_billing(ledger, today, batch=args.batch)
        run_time = time.perf_counter() - started
        started = time.perf_counter()
        again = run_billing(ledger, today, batch=args.batch)
        rerun_time = time.perf_counter() - started
        with engine.connect() as c:
            counts = [c.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in (Invoice.__table__, InvoiceLine.__table__, SubscriptionPeriod.__table__)]
            gapless = c.execute(select(func.max(Invoice.sequence) - func.min(Invoice.sequence) + 1)).scalar_one()
        bare_rate, run_rate = n / bare, first.invoices / run_time
        print(f"bare insert (invoices + lines): {n} in {bare:.2f} s = {bare_rate:,.0f} invoices/s")
        print(f"billing run:                    {first.invoices} in {run_time:.2f} s = {run_rate:,.0f} invoices/s "
              f"({first.batches} batches)")
        print(f"  ratio run/bare: {run_rate / bare_rate:.0%} (target >= 25%)")
        print(f"re-run same day:                {again.invoices} new in {rerun_time:.3f} s = "
              f"{rerun_time / run_time:.1%} of the first run (target < 10%)")
        services.close()
        ok = counts == [n, n, n] and gapless == n and again.invoices == 0
        if not ok:
            print(f"WRONG: invoices/lines/periods {counts}, numbers spanned {gapless}, re-run {again.invoices}",
                  file=sys.stderr)
        return 0 if ok else 1
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
