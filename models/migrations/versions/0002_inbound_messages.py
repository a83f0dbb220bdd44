"""inbound messages

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedup_key', sa.String(length=998), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('envelope_from', sa.String(), nullable=True),
    sa.Column('envelope_to', sa.String(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_addr', sa.String(), nullable=True),
    sa.Column('from_name', sa.String(), nullable=True),
    sa.Column('subject', sa.String(), nullable=True),
    sa.Column('in_reply_to', sa.String(), nullable=True),
    sa.Column('references', sa.String(), nullable=True),
    sa.Column('reply_text', sa.String(), nullable=True),
    sa.Column('parse_error', sa.String(), nullable=True),
    sa.Column('kind', sa.String(), nullable=True),
    sa.Column('route', sa.String(), nullable=True),
    sa.Column('rule', sa.String(), nullable=True),
    sa.Column('reason', sa.String(), nullable=True),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('candidate_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('outbound_id', sa.Integer(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('flag_reason', sa.String(), nullable=True),
    sa.Column('triage', sa.String(), nullable=True),
    sa.Column('routed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id'], ),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], ),
    sa.ForeignKeyConstraint(['outbound_id'], ['outbound_message.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_message_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_dedup_key'), ['dedup_key'], unique=True)
        batch_op.create_index(batch_op.f('ix_inbound_message_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_from_addr'), ['from_addr'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_route'), ['route'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_routed_at'), ['routed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_message_triage'), ['triage'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_message_triage'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_routed_at'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_route'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_received_at'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_message_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_from_addr'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_employee_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_dedup_key'))
        batch_op.drop_index(batch_op.f('ix_inbound_message_conversation_id'))

    op.drop_table('inbound_message')
