"""instance mappings in creation order: covering indexes for list page shares

The project one replaces ix_instance_mappings_project_id, whose lookups it
serves as well (and covers, for the cells a project's instances are in).

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
    with op.batch_alter_table('instance_mappings', schema=None) as batch_op:
        batch_op.create_index(
            'ix_instance_mappings_page_order',
            ['queued_for_delete', 'created_at', 'cell_id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_instance_mappings_project_page_order',
            ['project_id', 'queued_for_delete', 'created_at', 'cell_id'],
            unique=False,
        )
        batch_op.drop_index('ix_instance_mappings_project_id')


def downgrade() -> None:
    with op.batch_alter_table('instance_mappings', schema=None) as batch_op:
        batch_op.create_index('ix_instance_mappings_project_id', ['project_id'], unique=False)
        batch_op.drop_index('ix_instance_mappings_project_page_order')
        batch_op.drop_index('ix_instance_mappings_page_order')
