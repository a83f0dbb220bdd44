"""delivery and purposes

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('employee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery', sa.String(), nullable=False, server_default='forward'))

    with op.batch_alter_table('imap_server', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poll_after', sa.String(), nullable=False, server_default='seen'))

    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery', sa.String(), nullable=False, server_default='none'))
        batch_op.add_column(sa.Column('delivery_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('delivery_next_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivery_error', sa.String(), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_message_delivery'), ['delivery'], unique=False)

    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(), nullable=False, server_default='message'))
        batch_op.add_column(sa.Column('inbound_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbound_message_inbound_id'), ['inbound_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_message_inbound_id'))
        batch_op.drop_column('inbound_id')
        batch_op.drop_column('purpose')

    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_message_delivery'))
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('delivery_next_at')
        batch_op.drop_column('delivery_attempts')
        batch_op.drop_column('delivery')

    with op.batch_alter_table('imap_server', schema=None) as batch_op:
        batch_op.drop_column('poll_after')

    with op.batch_alter_table('employee', schema=None) as batch_op:
        batch_op.drop_column('delivery')

