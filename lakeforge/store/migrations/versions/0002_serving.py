"""serving endpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import lakeforge.store.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lf_serving_endpoints',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('creator', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', sa.Text(), nullable=True),
    sa.Column('pending_config', sa.Text(), nullable=True),
    sa.Column('config_update', sa.String(length=20), nullable=False),
    sa.Column('update_message', sa.Text(), nullable=True),
    sa.Column('ai_gateway', sa.Text(), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('created_at', lakeforge.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lakeforge.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lf_serving_endpoints')),
    sa.UniqueConstraint('name', name=op.f('uq_lf_serving_endpoints_name'))
    )


def downgrade() -> None:
    op.drop_table('lf_serving_endpoints')
