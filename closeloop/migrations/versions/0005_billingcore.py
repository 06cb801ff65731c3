"""Billing core: what the set-based billing run reads on subscriptions, one period per
(subscription, start), seat changes and cancellations, external invoices.

Revision ID: 0005_billingcore
Revises: 0004_gaps
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_billingcore'
down_revision = '0004_gaps'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_index', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('next_start', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('payment_terms_days', sa.Integer(), nullable=False, server_default='30'))
        batch_op.add_column(sa.Column('description', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('credit', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('billed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('billed_today', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_subscriptions_due', ['status', 'next_start'], unique=False)
    # Subscriptions started before this revision: their next period follows their last one.
    op.execute('UPDATE subscriptions SET '
               'next_start = (SELECT MAX(p."end") FROM subscription_periods p WHERE p.subscription_id = subscriptions.id), '
               'next_index = COALESCE((SELECT MAX(p."index") + 1 FROM subscription_periods p '
               'WHERE p.subscription_id = subscriptions.id), 1), '
               'description = COALESCE((SELECT s.name FROM skus s WHERE s.id = subscriptions.sku_id), \'\') '
               "WHERE status IN ('active', 'cancelling')")
    with op.batch_alter_table('subscription_periods', schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f('uq_subscription_periods_subscription_id_start'),
                                          ['subscription_id', 'start'])

    op.create_table('subscription_changes',
    sa.Column('id', _ID, nullable=False),
    sa.Column('subscription_id', _ID, nullable=False),
    sa.Column('request_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('old_quantity', sa.Numeric(18, 6).with_variant(sa.String(40), 'sqlite'), nullable=False),
    sa.Column('new_quantity', sa.Numeric(18, 6).with_variant(sa.String(40), 'sqlite'), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('prorated', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', _ID, nullable=True),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_subscription_changes_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'],
                            name=op.f('fk_subscription_changes_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_changes')),
    sa.UniqueConstraint('request_key', name=op.f('uq_subscription_changes_request_key'))
    )
    op.create_index(op.f('ix_subscription_changes_subscription_id'), 'subscription_changes', ['subscription_id'])

    op.create_table('external_invoices',
    sa.Column('id', _ID, nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('customer_name', sa.String(length=200), nullable=True),
    sa.Column('vat_id', sa.String(length=64), nullable=True),
    sa.Column('gross', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('issue_date', sa.Date(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('status', sa.Enum('matched', 'unmatched', name='externalinvoicestatus', native_enum=False,
                                length=32), nullable=False),
    sa.Column('deal_id', _ID, nullable=True),
    sa.Column('match_reason', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_external_invoices_deal_id_deals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_invoices')),
    sa.UniqueConstraint('source', name=op.f('uq_external_invoices_source'))
    )
    op.create_index(op.f('ix_external_invoices_status'), 'external_invoices', ['status'])
    op.create_index(op.f('ix_external_invoices_deal_id'), 'external_invoices', ['deal_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_external_invoices_deal_id'), table_name='external_invoices')
    op.drop_index(op.f('ix_external_invoices_status'), table_name='external_invoices')
    op.drop_table('external_invoices')
    op.drop_index(op.f('ix_subscription_changes_subscription_id'), table_name='subscription_changes')
    op.drop_table('subscription_changes')
    with op.batch_alter_table('subscription_periods', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_subscription_periods_subscription_id_start'), type_='unique')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriptions_due')
        for column in ('billed_today', 'billed_on', 'credit', 'description', 'payment_terms_days',
                       'next_start', 'next_index'):
            batch_op.drop_column(column)
