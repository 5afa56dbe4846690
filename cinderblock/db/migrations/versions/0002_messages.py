"""messages: user messages (GET /messages, API 3.3)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('messages',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('project_id', sa.String(length=255), nullable=False),
                    sa.Column('request_id', sa.String(length=255), nullable=True),
                    sa.Column('resource_type', sa.String(length=36), nullable=False),
                    sa.Column('resource_uuid', sa.String(length=36), nullable=True),
                    sa.Column('event_id', sa.String(length=255), nullable=False),
                    sa.Column('message_level', sa.String(length=255), nullable=False),
                    sa.Column('user_message', sa.Text(), nullable=False),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.Column('expires_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_messages_project_created', ['project_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_project_created')
        batch_op.drop_index('ix_messages_expires_at')
    op.drop_table('messages')
