"""imap folder state

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imap_folder_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('imap_server_id', sa.Integer(), nullable=False),
    sa.Column('folder', sa.String(), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=True),
    sa.Column('last_uid', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['imap_server_id'], ['imap_server.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('imap_server_id', 'folder')
    )
    with op.batch_alter_table('imap_folder_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imap_folder_state_imap_server_id'), ['imap_server_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('imap_folder_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_imap_folder_state_imap_server_id'))

    op.drop_table('imap_folder_state')
