"""candidate data: the audit log, retention tallies, erasure receipts, a candidate's other addresses,
attachment names for search, when a person triaged a message, and indexes on a bounce's original and a
message's candidate

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidate') as batch:
        batch.add_column(sa.Column('same_person_as', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_candidate_same_person_as', 'candidate', ['same_person_as'], ['id'])
        batch.create_index(op.f('ix_candidate_same_person_as'), ['same_person_as'], unique=False)
    with op.batch_alter_table('inbound_message') as batch:
        batch.add_column(sa.Column('attachment_names', sa.String(), nullable=True))
        batch.add_column(sa.Column('triaged_at', sa.DateTime(timezone=True), nullable=True))
        # removing a Mail Log entry (retention, erasure) looks for the bounces that point at it
        batch.create_index(op.f('ix_inbound_message_outbound_id'), ['outbound_id'], unique=False)
        # an erasure finds a candidate's mail by it
        batch.create_index(op.f('ix_inbound_message_candidate_id'), ['candidate_id'], unique=False)
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('detail', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_audit_event_at'), 'audit_event', ['at'], unique=False)
    op.create_index(op.f('ix_audit_event_action'), 'audit_event', ['action'], unique=False)
    op.create_table('retention_tally',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'kind', 'outcome')
    )
    op.create_table('erasure_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('counts', sa.String(), nullable=False),
    sa.Column('imap', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_erasure_receipt_address_hash'), 'erasure_receipt', ['address_hash'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_erasure_receipt_address_hash'), table_name='erasure_receipt')
    op.drop_table('erasure_receipt')
    op.drop_table('retention_tally')
    op.drop_index(op.f('ix_audit_event_action'), table_name='audit_event')
    op.drop_index(op.f('ix_audit_event_at'), table_name='audit_event')
    op.drop_table('audit_event')
    with op.batch_alter_table('inbound_message') as batch:
        batch.drop_index(op.f('ix_inbound_message_candidate_id'))
        batch.drop_index(op.f('ix_inbound_message_outbound_id'))
        batch.drop_column('triaged_at')
        batch.drop_column('attachment_names')
    with op.batch_alter_table('candidate') as batch:
        batch.drop_index(op.f('ix_candidate_same_person_as'))
        batch.drop_constraint('fk_candidate_same_person_as', type_='foreignkey')
        batch.drop_column('same_person_as')
