"""map_instances resume markers

Revision ID: api_0002
Revises: api_0001
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'api_0002'
down_revision = 'api_0001'
branch_labels = None
depends_on = None

# Frozen copy of cellrouter.db.types.DateTime as of this revision.
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table('instance_mapping_markers',
    sa.Column('cell_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_instance_id', sa.Integer(), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['cell_id'], ['cell_mappings.id'], name=op.f('fk_instance_mapping_markers_cell_id_cell_mappings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cell_id', name=op.f('pk_instance_mapping_markers'))
    )


def downgrade() -> None:
    op.drop_table('instance_mapping_markers')
