"""cell list generation counter

Revision ID: api_0003
Revises: api_0002
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = 'api_0003'
down_revision = 'api_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('cell_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cell_generation'))
    )
    # The one row the mapping store bumps; cells mapped before count as generation 0.
    op.bulk_insert(table, [{'id': 1, 'generation': 0}])


def downgrade() -> None:
    op.drop_table('cell_generation')
