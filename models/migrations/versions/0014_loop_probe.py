"""loop probe: when each alias's scheduled loop probe last started, how it ended, and its lease

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('loop_probe',
    sa.Column('alias_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=True),
    sa.Column('broken_leg', sa.String(), nullable=True),
    sa.Column('detail', sa.String(), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['alias_id'], ['alias.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('alias_id')
    )


def downgrade() -> None:
    op.drop_table('loop_probe')
