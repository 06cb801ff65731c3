"""Completeness: gap states, evaluation runs, the daily digest claim, vendor usage bills;
the indexes the gap rules need; inbound events learn whether they were triaged.

Revision ID: 0004_gaps
Revises: 0003_mail_io
Create Date: 2026-12-01 13:32:25.289720
"""
from alembic import op
import sqlalchemy as sa



revision = '0004_gaps'
down_revision = '0003_mail_io'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('gap_digests',
    sa.Column('digest_date', sa.Date(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest_date', name=op.f('pk_gap_digests'))
    )
    op.create_table('gap_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ran_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('open', sa.Integer(), nullable=False),
    sa.Column('opened', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('queries', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gap_runs'))
    )
    with op.batch_alter_table('gap_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gap_runs_ran_at'), ['ran_at'], unique=False)

    op.create_table('gap_states',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rule', sa.String(length=48), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('deal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ref', sa.String(length=120), nullable=True),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snooze_reason', sa.String(length=300), nullable=True),
    sa.Column('snoozed_by', sa.String(length=120), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gap_states'))
    )
    with op.batch_alter_table('gap_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gap_states_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_gap_states_first_seen', ['first_seen'], unique=False)
        batch_op.create_index(batch_op.f('ix_gap_states_owner'), ['owner'], unique=False)
        batch_op.create_index('ix_gap_states_resolved_at', ['resolved_at'], unique=False)
        batch_op.create_index('uq_gap_states_open', ['rule', 'entity_id'], unique=True, sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))

    op.create_table('vendor_usage',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('vendor', sa.String(length=120), nullable=False),
    sa.Column('sku_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Numeric(18, 6).with_variant(sa.String(40), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_vendor_usage_sku_id_skus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vendor_usage')),
    sa.UniqueConstraint('vendor', 'sku_id', 'period_start', name=op.f('uq_vendor_usage_vendor_sku_id_period_start'))
    )
    with op.batch_alter_table('vendor_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vendor_usage_sku_id'), ['sku_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_bounced_at', ['bounced_at'], unique=False)

    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_stage_stage_changed_at', ['stage', 'stage_changed_at'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_customer_id_occurred_at', ['customer_id', 'occurred_at'], unique=False)

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triaged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_inbound_events_triaged_at_source', ['triaged_at', 'source'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_inbound_events_deal_id_deals'), 'deals', ['deal_id'], ['id'])

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_lines_sku_id_period_start', ['sku_id', 'period_start'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_status_due_on', ['status', 'due_on'], unique=False)

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billed_through', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_subscriptions_billed_through'), ['billed_through'], unique=False)
    _billed_through()




def _billed_through() -> None:
    """subscriptions.billed_through follows the latest end of its periods, whoever writes them."""
    op.execute('UPDATE subscriptions SET billed_through = (SELECT max(p."end") FROM subscription_periods p '
               'WHERE p.subscription_id = subscriptions.id)')
    update = ('UPDATE subscriptions SET billed_through = NEW."end" WHERE id = NEW.subscription_id '
              'AND (billed_through IS NULL OR billed_through < NEW."end")')
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION closeloop_billed_through() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {update};
                RETURN NEW;
            END $$""")
        op.execute("""
            CREATE TRIGGER subscription_periods_billed_through AFTER INSERT OR UPDATE OF "end"
            ON subscription_periods FOR EACH ROW EXECUTE FUNCTION closeloop_billed_through()""")
    else:
        for event in ("INSERT", 'UPDATE OF "end"'):
            name = "insert" if event == "INSERT" else "update"
            op.execute(f"""
                CREATE TRIGGER subscription_periods_billed_through_{name} AFTER {event} ON subscription_periods
                BEGIN {update}; END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscription_periods_billed_through ON subscription_periods")
        op.execute("DROP FUNCTION IF EXISTS closeloop_billed_through()")
    else:
        for name in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subscription_periods_billed_through_{name}")
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_billed_through'))
        batch_op.drop_column('billed_through')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_status_due_on')

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_lines_sku_id_period_start')

    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_inbound_events_deal_id_deals'), type_='foreignkey')
        batch_op.drop_index('ix_inbound_events_triaged_at_source')
        batch_op.drop_column('deal_id')
        batch_op.drop_column('triaged_at')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_customer_id_occurred_at')

    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_stage_stage_changed_at')

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_bounced_at')

    with op.batch_alter_table('vendor_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vendor_usage_sku_id'))

    op.drop_table('vendor_usage')
    with op.batch_alter_table('gap_states', schema=None) as batch_op:
        batch_op.drop_index('uq_gap_states_open', sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))
        batch_op.drop_index('ix_gap_states_resolved_at')
        batch_op.drop_index(batch_op.f('ix_gap_states_owner'))
        batch_op.drop_index('ix_gap_states_first_seen')
        batch_op.drop_index(batch_op.f('ix_gap_states_customer_id'))

    op.drop_table('gap_states')
    with op.batch_alter_table('gap_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gap_runs_ran_at'))

    op.drop_table('gap_runs')
    op.drop_table('gap_digests')

