"""Roles for Slack users and groups; discount approval on quote versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:31:24.935735
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('role_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('principal', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('rep', 'manager', 'finance', 'admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('granted_by', sa.String(length=120), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grants')),
    sa.UniqueConstraint('principal', 'role', name=op.f('uq_role_grants_principal_role'))
    )
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_grants_principal'), ['principal'], unique=False)

    with op.batch_alter_table('quote_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval', sa.Enum('not_needed', 'pending', 'approved', 'rejected', name='approval', native_enum=False, length=32), nullable=False,
                                      server_default='not_needed'))
        batch_op.add_column(sa.Column('approval_by', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('approval_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('quote_versions', schema=None) as batch_op:
        batch_op.drop_column('approval_at')
        batch_op.drop_column('approval_by')
        batch_op.drop_column('approval')

    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_grants_principal'))

    op.drop_table('role_grants')
