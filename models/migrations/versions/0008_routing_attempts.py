"""routing attempts: a message whose routing fails is retried with backoff, then routed to Unassigned

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.add_column(sa.Column('route_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('route_next_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('route_error', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_message') as batch:
        batch.drop_column('route_error')
        batch.drop_column('route_next_at')
        batch.drop_column('route_attempts')
