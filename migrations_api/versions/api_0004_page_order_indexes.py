"""instance mappings in creation order: covering indexes for list page shares

Revision ID: api_0004
Revises: api_0003
Create Date: 2026-12-01
"""

from alembic import op

revision = 'api_0004'
down_revision = 'api_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_instance_mappings_page_order',
        'instance_mappings',
        ['queued_for_delete', 'created_at', 'cell_id'],
    )
    op.create_index(
        'ix_instance_mappings_project_page_order',
        'instance_mappings',
        ['project_id', 'queued_for_delete', 'created_at', 'cell_id'],
    )


def downgrade() -> None:
    op.drop_index('ix_instance_mappings_project_page_order', table_name='instance_mappings')
    op.drop_index('ix_instance_mappings_page_order', table_name='instance_mappings')
