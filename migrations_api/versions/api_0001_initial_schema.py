"""initial schema

Revision ID: api_0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'api_0001'
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of cellrouter.db.types as of this revision.
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table('build_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('instance', LONGTEXT, nullable=True),
    sa.Column('block_device_mappings', LONGTEXT, nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_build_requests')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_build_requests_instance_uuid'))
    )
    with op.batch_alter_table('build_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_build_requests_project_id'), ['project_id'], unique=False)

    op.create_table('cell_mappings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('transport_url', LONGTEXT, nullable=False),
    sa.Column('database_connection', LONGTEXT, nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cell_mappings')),
    sa.UniqueConstraint('uuid', name=op.f('uq_cell_mappings_uuid'))
    )
    op.create_table('instance_types',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('flavorid', sa.String(length=255), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('root_gb', sa.Integer(), nullable=True),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=True),
    sa.Column('swap', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rxtx_factor', sa.Float(), server_default='1', nullable=True),
    sa.Column('vcpu_weight', sa.Integer(), nullable=True),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('is_public', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_types')),
    sa.UniqueConstraint('flavorid', name=op.f('uq_instance_types_flavorid')),
    sa.UniqueConstraint('name', name=op.f('uq_instance_types_name'))
    )
    op.create_table('key_pairs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=255), nullable=True),
    sa.Column('public_key', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=10), server_default='ssh', nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_pairs')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_key_pairs_user_id_name'))
    )
    op.create_table('migrations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=True),
    sa.Column('source_compute', sa.String(length=255), nullable=True),
    sa.Column('dest_compute', sa.String(length=255), nullable=True),
    sa.Column('source_node', sa.String(length=255), nullable=True),
    sa.Column('dest_node', sa.String(length=255), nullable=True),
    sa.Column('dest_host', sa.String(length=255), nullable=True),
    sa.Column('old_instance_type_id', sa.Integer(), nullable=True),
    sa.Column('new_instance_type_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=255), nullable=True),
    sa.Column('migration_type', sa.String(length=32), nullable=True),
    sa.Column('hidden', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('cross_cell_move', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migrations')),
    sa.UniqueConstraint('uuid', name=op.f('uq_migrations_uuid'))
    )
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migrations_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index('ix_migrations_instance_uuid_status', ['instance_uuid', 'status'], unique=False)

    op.create_table('networks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('cidr', sa.String(length=43), nullable=True),
    sa.Column('cidr_v6', sa.String(length=43), nullable=True),
    sa.Column('bridge', sa.String(length=255), nullable=True),
    sa.Column('vlan', sa.Integer(), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_networks')),
    sa.UniqueConstraint('uuid', name=op.f('uq_networks_uuid'))
    )
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_networks_project_id'), ['project_id'], unique=False)

    op.create_table('project_user_quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_user_quotas')),
    sa.UniqueConstraint('user_id', 'project_id', 'resource', name=op.f('uq_project_user_quotas_user_id_project_id_resource'))
    )
    with op.batch_alter_table('project_user_quotas', schema=None) as batch_op:
        batch_op.create_index('ix_project_user_quotas_user_id_project_id', ['user_id', 'project_id'], unique=False)

    op.create_table('provider_fw_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('protocol', sa.String(length=5), nullable=True),
    sa.Column('from_port', sa.Integer(), nullable=True),
    sa.Column('to_port', sa.Integer(), nullable=True),
    sa.Column('cidr', sa.String(length=43), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_fw_rules'))
    )
    op.create_table('quota_classes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_classes')),
    sa.UniqueConstraint('class_name', 'resource', name=op.f('uq_quota_classes_class_name_resource'))
    )
    with op.batch_alter_table('quota_classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quota_classes_class_name'), ['class_name'], unique=False)

    op.create_table('quota_usages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('in_use', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reserved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('until_refresh', sa.Integer(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_usages'))
    )
    with op.batch_alter_table('quota_usages', schema=None) as batch_op:
        batch_op.create_index('ix_quota_usages_project_id_user_id', ['project_id', 'user_id'], unique=False)

    op.create_table('quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
    sa.UniqueConstraint('project_id', 'resource', name=op.f('uq_quotas_project_id_resource'))
    )
    op.create_table('request_specs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('spec', LONGTEXT, nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_specs')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_request_specs_instance_uuid'))
    )
    op.create_table('security_group_default_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('protocol', sa.String(length=5), nullable=True),
    sa.Column('from_port', sa.Integer(), nullable=True),
    sa.Column('to_port', sa.Integer(), nullable=True),
    sa.Column('cidr', sa.String(length=43), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_group_default_rules'))
    )
    op.create_table('security_groups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_groups')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_security_groups_project_id_name'))
    )
    op.create_table('tags',
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('resource_id', 'tag', name=op.f('pk_tags'))
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_tag', ['tag'], unique=False)

    op.create_table('host_mappings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('cell_id', sa.Integer(), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['cell_id'], ['cell_mappings.id'], name=op.f('fk_host_mappings_cell_id_cell_mappings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_mappings')),
    sa.UniqueConstraint('host', name=op.f('uq_host_mappings_host'))
    )
    with op.batch_alter_table('host_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_mappings_cell_id'), ['cell_id'], unique=False)

    op.create_table('instance_mappings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('cell_id', sa.Integer(), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('queued_for_delete', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['cell_id'], ['cell_mappings.id'], name=op.f('fk_instance_mappings_cell_id_cell_mappings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_mappings')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_instance_mappings_instance_uuid'))
    )
    with op.batch_alter_table('instance_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_mappings_cell_id'), ['cell_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_mappings_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_instance_mappings_user_id_project_id', ['user_id', 'project_id'], unique=False)

    op.create_table('instance_type_extra_specs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_type_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['instance_type_id'], ['instance_types.id'], name=op.f('fk_instance_type_extra_specs_instance_type_id_instance_types'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_type_extra_specs')),
    sa.UniqueConstraint('instance_type_id', 'key', name=op.f('uq_instance_type_extra_specs_instance_type_id_key'))
    )
    op.create_table('instance_type_projects',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_type_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['instance_type_id'], ['instance_types.id'], name=op.f('fk_instance_type_projects_instance_type_id_instance_types'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_type_projects')),
    sa.UniqueConstraint('instance_type_id', 'project_id', name=op.f('uq_instance_type_projects_instance_type_id_project_id'))
    )
    op.create_table('security_group_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('parent_group_id', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=255), nullable=True),
    sa.Column('from_port', sa.Integer(), nullable=True),
    sa.Column('to_port', sa.Integer(), nullable=True),
    sa.Column('cidr', sa.String(length=43), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['security_groups.id'], name=op.f('fk_security_group_rules_group_id_security_groups')),
    sa.ForeignKeyConstraint(['parent_group_id'], ['security_groups.id'], name=op.f('fk_security_group_rules_parent_group_id_security_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_group_rules'))
    )
    with op.batch_alter_table('security_group_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_group_rules_parent_group_id'), ['parent_group_id'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    op.drop_table('security_group_rules')
    op.drop_table('instance_type_projects')
    op.drop_table('instance_type_extra_specs')
    op.drop_table('instance_mappings')
    op.drop_table('host_mappings')
    op.drop_table('tags')
    op.drop_table('security_groups')
    op.drop_table('security_group_default_rules')
    op.drop_table('request_specs')
    op.drop_table('quotas')
    op.drop_table('quota_usages')
    op.drop_table('quota_classes')
    op.drop_table('provider_fw_rules')
    op.drop_table('project_user_quotas')
    op.drop_table('networks')
    op.drop_table('migrations')
    op.drop_table('key_pairs')
    op.drop_table('instance_types')
    op.drop_table('cell_mappings')
    op.drop_table('build_requests')
