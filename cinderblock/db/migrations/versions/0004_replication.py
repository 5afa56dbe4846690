"""replication: per-volume driver data and lag (extended status)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replication_driver_data', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('replication_extended_status', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_column('replication_extended_status')
        batch_op.drop_column('replication_driver_data')
