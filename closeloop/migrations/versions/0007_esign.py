"""DocuSign envelopes: our idempotency key (custom field), creation state, the last
provider status and its time, the stored signed PDF and certificate, the verdict.

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


def downgrade() -> None:
    with op.batch_alter_table('docusign_envelopes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_docusign_envelopes_deal_id'))
    op.drop_table('docusign_envelopes')
