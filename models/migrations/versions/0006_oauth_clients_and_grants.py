"""oauth clients and grants

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('client_id', sa.String(), nullable=False),
    sa.Column('client_secret', sa.String(), nullable=True),
    sa.Column('tenant', sa.String(), nullable=True),
    sa.Column('scopes', sa.String(), nullable=False),
    sa.Column('authorize_url', sa.String(), nullable=False),
    sa.Column('token_url', sa.String(), nullable=False),
    sa.Column('device_url', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('oauth_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_kind', sa.String(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(), nullable=True),
    sa.Column('refresh_token', sa.String(), nullable=True),
    sa.Column('access_token', sa.String(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('state_reason', sa.String(), nullable=True),
    sa.Column('refreshing_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_kind', 'account_id')
    )
    with op.batch_alter_table('imap_server', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oauth_client_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('oauth_flow', sa.String(), nullable=True))
        batch_op.create_foreign_key('fk_imap_server_oauth_client', 'oauth_client', ['oauth_client_id'], ['id'])

    with op.batch_alter_table('smtp_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oauth_client_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('oauth_flow', sa.String(), nullable=True))
        batch_op.create_foreign_key('fk_smtp_account_oauth_client', 'oauth_client', ['oauth_client_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('smtp_account', schema=None) as batch_op:
        batch_op.drop_constraint('fk_smtp_account_oauth_client', type_='foreignkey')
        batch_op.drop_column('oauth_flow')
        batch_op.drop_column('oauth_client_id')

    with op.batch_alter_table('imap_server', schema=None) as batch_op:
        batch_op.drop_constraint('fk_imap_server_oauth_client', type_='foreignkey')
        batch_op.drop_column('oauth_flow')
        batch_op.drop_column('oauth_client_id')

    op.drop_table('oauth_grant')
    op.drop_table('oauth_client')
