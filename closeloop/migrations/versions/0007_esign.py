"""DocuSign envelopes: our idempotency key (custom field), creation state, the last
provider status and its time, the stored signed PDF and certificate, the verdict.
Also (wiring the gap rules): subscriptions.billed_through and its trigger (0004_gaps)
go; the gap rules read subscriptions.next_start, which the billing run keeps (0005).

Revision ID: 0007_esign
Revises: 0006_billingmoney
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_esign'
down_revision = '0006_billingmoney'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('docusign_envelopes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('signature_envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('deal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('closeloop_key', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('provider_status', sa.String(length=16), nullable=True),
    sa.Column('provider_status_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_pdf', sa.String(length=400), nullable=True),
    sa.Column('certificate_pdf', sa.String(length=400), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_docusign_envelopes_deal_id_deals')),
    sa.ForeignKeyConstraint(['signature_envelope_id'], ['signature_envelopes.id'], name=op.f('fk_docusign_envelopes_signature_envelope_id_signature_envelopes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_docusign_envelopes')),
    sa.UniqueConstraint('closeloop_key', name=op.f('uq_docusign_envelopes_closeloop_key')),
    sa.UniqueConstraint('signature_envelope_id', name=op.f('uq_docusign_envelopes_signature_envelope_id'))
    )
    with op.batch_alter_table('docusign_envelopes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_docusign_envelopes_deal_id'), ['deal_id'], unique=False)
    _drop_billed_through()
    with op.batch_alter_table('docusign_envelopes', schema=None) as batch_op:  # the gap rule signature-failed
        batch_op.create_index('ix_docusign_envelopes_verdict', ['verdict'], unique=False)


def _drop_billed_through() -> None:
    """billed_through duplicated next_start (the end of the latest period) through a trigger."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscription_periods_billed_through ON subscription_periods")
        op.execute("DROP FUNCTION IF EXISTS closeloop_billed_through()")
    else:
        for name in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subscription_periods_billed_through_{name}")
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriptions_billed_through')
        batch_op.drop_column('billed_through')


def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:  # the column only; 0004's trigger stays gone
        batch_op.add_column(sa.Column('billed_through', sa.Date(), nullable=True))
        batch_op.create_index('ix_subscriptions_billed_through', ['billed_through'], unique=False)
    with op.batch_alter_table('docusign_envelopes', schema=None) as batch_op:
        batch_op.drop_index('ix_docusign_envelopes_verdict')
        batch_op.drop_index(batch_op.f('ix_docusign_envelopes_deal_id'))
    op.drop_table('docusign_envelopes')
