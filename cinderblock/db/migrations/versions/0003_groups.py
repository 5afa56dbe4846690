"""groups: group types (+ specs), groups (+ volume types), group snapshots, volume/snapshot links

Revision ID: 0003
Revises: 0002
"""
from typing import Any

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column[Any]]:
    return [sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=True)]


def upgrade() -> None:
    op.create_table('group_types',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.String(length=255), nullable=False),
                    sa.Column('description', sa.String(length=255), nullable=True),
                    sa.Column('is_public', sa.Boolean(), nullable=False),
                    *_stamps(),
                    sa.PrimaryKeyConstraint('id'), sa.UniqueConstraint('name'))
    op.create_table('group_type_specs',
                    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('group_type_id', sa.String(length=36), nullable=False),
                    sa.Column('key', sa.String(length=255), nullable=False),
                    sa.Column('value', sa.String(length=255), nullable=False),
                    sa.ForeignKeyConstraint(['group_type_id'], ['group_types.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('id'), sa.UniqueConstraint('group_type_id', 'key'))
    op.create_table('groups',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('project_id', sa.String(length=255), nullable=False),
                    sa.Column('user_id', sa.String(length=255), nullable=False),
                    sa.Column('display_name', sa.String(length=255), nullable=True),
                    sa.Column('display_description', sa.String(length=255), nullable=True),
                    sa.Column('status', sa.String(length=32), nullable=False),
                    sa.Column('host', sa.String(length=255), nullable=True),
                    sa.Column('availability_zone', sa.String(length=255), nullable=True),
                    sa.Column('group_type_id', sa.String(length=36), nullable=False),
                    sa.Column('group_snapshot_id', sa.String(length=36), nullable=True),
                    sa.Column('source_group_id', sa.String(length=36), nullable=True),
                    sa.Column('replication_status', sa.String(length=32), nullable=False),
                    sa.Column('error_reason', sa.Text(), nullable=True),
                    *_stamps(),
                    sa.ForeignKeyConstraint(['group_type_id'], ['group_types.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_groups_project_created', 'groups', ['project_id', 'created_at'])
    op.create_table('group_volume_type_mapping',
                    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('group_id', sa.String(length=36), nullable=False),
                    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
                    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id']),
                    sa.PrimaryKeyConstraint('id'), sa.UniqueConstraint('group_id', 'volume_type_id'))
    op.create_table('group_snapshots',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('group_id', sa.String(length=36), nullable=False),
                    sa.Column('project_id', sa.String(length=255), nullable=False),
                    sa.Column('user_id', sa.String(length=255), nullable=False),
                    sa.Column('display_name', sa.String(length=255), nullable=True),
                    sa.Column('display_description', sa.String(length=255), nullable=True),
                    sa.Column('status', sa.String(length=32), nullable=False),
                    sa.Column('group_type_id', sa.String(length=36), nullable=False),
                    sa.Column('consistent', sa.Boolean(), nullable=True),
                    sa.Column('write_pause_ms', sa.Float(), nullable=True),
                    sa.Column('error_reason', sa.Text(), nullable=True),
                    sa.Column('taken_at', sa.DateTime(), nullable=True),
                    *_stamps(),
                    sa.ForeignKeyConstraint(['group_id'], ['groups.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_group_snapshots_group_id', 'group_snapshots', ['group_id'])
    # Plain indexed columns (no FK constraint): SQLite cannot add one to an existing table in place.
    op.add_column('volumes', sa.Column('group_id', sa.String(length=36), nullable=True))
    op.add_column('volumes', sa.Column('consistencygroup_id', sa.String(length=36), nullable=True))
    op.create_index('ix_volumes_group_id', 'volumes', ['group_id'])
    op.add_column('snapshots', sa.Column('group_snapshot_id', sa.String(length=36), nullable=True))
    op.create_index('ix_snapshots_group_snapshot_id', 'snapshots', ['group_snapshot_id'])


def downgrade() -> None:
    op.drop_index('ix_snapshots_group_snapshot_id', table_name='snapshots')
    with op.batch_alter_table('snapshots') as batch:
        batch.drop_column('group_snapshot_id')
    op.drop_index('ix_volumes_group_id', table_name='volumes')
    with op.batch_alter_table('volumes') as batch:
        batch.drop_column('consistencygroup_id')
        batch.drop_column('group_id')
    # Dropped with its table: MariaDB refuses to drop an index its foreign key on group_id needs.
    op.drop_table('group_snapshots')
    op.drop_table('group_volume_type_mapping')
    op.drop_index('ix_groups_project_created', table_name='groups')
    op.drop_table('groups')
    op.drop_table('group_type_specs')
    op.drop_table('group_types')
