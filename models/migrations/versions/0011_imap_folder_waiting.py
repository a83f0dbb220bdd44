"""how many messages a polled folder still holds above its last UID, as its latest pass found them

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('imap_folder_state') as batch:
        batch.add_column(sa.Column('waiting', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('imap_folder_state') as batch:
        batch.drop_column('waiting')
