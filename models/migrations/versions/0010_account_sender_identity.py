"""an SMTP account's own sender identity: the friendly name and address its automated mail goes out under

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('smtp_account') as batch:
        batch.add_column(sa.Column('from_name', sa.String(), nullable=True))
        batch.add_column(sa.Column('from_address', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('smtp_account') as batch:
        batch.drop_column('from_address')
        batch.drop_column('from_name')
