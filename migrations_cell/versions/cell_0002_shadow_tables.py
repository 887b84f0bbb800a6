"""shadow tables (db archive_deleted_rows) and the archive's unmap queue

Revision ID: cell_0002
Revises: cell_0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'cell_0002'
down_revision = 'cell_0001'
branch_labels = None
depends_on = None

# Frozen copies of cellrouter.db.types as of this revision.
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    # Instances archived whose API-database rows may still exist (see cellrouter.db.archive).
    op.create_table('archive_unmaps',
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.PrimaryKeyConstraint('instance_uuid', name=op.f('pk_archive_unmaps'))
    )
    # One shadow_<table> per cell table: its columns and primary key, nothing else.
    op.create_table('shadow_block_device_mapping',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('source_type', sa.String(length=255), nullable=True),
    sa.Column('destination_type', sa.String(length=255), nullable=True),
    sa.Column('guest_format', sa.String(length=255), nullable=True),
    sa.Column('device_type', sa.String(length=255), nullable=True),
    sa.Column('disk_bus', sa.String(length=255), nullable=True),
    sa.Column('boot_index', sa.Integer(), nullable=True),
    sa.Column('device_name', sa.String(length=255), nullable=True),
    sa.Column('delete_on_termination', sa.Boolean(), server_default=sa.false(), nullable=True),
    sa.Column('snapshot_id', sa.String(length=36), nullable=True),
    sa.Column('volume_id', sa.String(length=36), nullable=True),
    sa.Column('volume_size', sa.Integer(), nullable=True),
    sa.Column('image_id', sa.String(length=36), nullable=True),
    sa.Column('no_device', sa.Boolean(), nullable=True),
    sa.Column('connection_info', LONGTEXT, nullable=True),
    sa.Column('tag', sa.String(length=255), nullable=True),
    sa.Column('attachment_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_block_device_mapping'))
    )
    op.create_table('shadow_compute_nodes',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('hypervisor_hostname', sa.String(length=255), nullable=True),
    sa.Column('hypervisor_type', sa.String(length=255), nullable=True),
    sa.Column('vcpus', sa.Integer(), server_default='0', nullable=False),
    sa.Column('memory_mb', sa.Integer(), server_default='0', nullable=False),
    sa.Column('local_gb', sa.Integer(), server_default='0', nullable=False),
    sa.Column('vcpus_used', sa.Integer(), server_default='0', nullable=False),
    sa.Column('memory_mb_used', sa.Integer(), server_default='0', nullable=False),
    sa.Column('local_gb_used', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cpu_allocation_ratio', sa.Float(), nullable=True),
    sa.Column('ram_allocation_ratio', sa.Float(), nullable=True),
    sa.Column('disk_allocation_ratio', sa.Float(), nullable=True),
    sa.Column('mapped', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_compute_nodes'))
    )
    op.create_table('shadow_instance_actions',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('action', sa.String(length=255), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('start_time', DT, nullable=True),
    sa.Column('finish_time', DT, nullable=True),
    sa.Column('message', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_actions'))
    )
    op.create_table('shadow_instance_actions_events',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('event', sa.String(length=255), nullable=True),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('start_time', DT, nullable=True),
    sa.Column('finish_time', DT, nullable=True),
    sa.Column('result', sa.String(length=255), nullable=True),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('details', sa.Text(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_actions_events'))
    )
    op.create_table('shadow_instance_extra',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('numa_topology', sa.Text(), nullable=True),
    sa.Column('pci_requests', sa.Text(), nullable=True),
    sa.Column('flavor', sa.Text(), nullable=True),
    sa.Column('vcpu_model', sa.Text(), nullable=True),
    sa.Column('migration_context', sa.Text(), nullable=True),
    sa.Column('keypairs', sa.Text(), nullable=True),
    sa.Column('device_metadata', sa.Text(), nullable=True),
    sa.Column('trusted_certs', sa.Text(), nullable=True),
    sa.Column('resources', sa.Text(), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_extra'))
    )
    op.create_table('shadow_instance_faults',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('message', sa.String(length=255), nullable=True),
    sa.Column('details', LONGTEXT, nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_faults'))
    )
    op.create_table('shadow_instance_id_mappings',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_id_mappings'))
    )
    op.create_table('shadow_instance_info_caches',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('network_info', LONGTEXT, nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_info_caches'))
    )
    op.create_table('shadow_instance_metadata',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.Column('value', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_metadata'))
    )
    op.create_table('shadow_instance_system_metadata',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instance_system_metadata'))
    )
    op.create_table('shadow_instances',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=True),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('display_description', sa.Text(), nullable=True),
    sa.Column('hostname', sa.String(length=255), nullable=True),
    sa.Column('vm_state', sa.String(length=255), nullable=True),
    sa.Column('task_state', sa.String(length=255), nullable=True),
    sa.Column('power_state', sa.Integer(), nullable=True),
    sa.Column('instance_type_id', sa.Integer(), nullable=True),
    sa.Column('memory_mb', sa.Integer(), nullable=True),
    sa.Column('vcpus', sa.Integer(), nullable=True),
    sa.Column('root_gb', sa.Integer(), nullable=True),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=True),
    sa.Column('image_ref', sa.String(length=255), nullable=True),
    sa.Column('key_name', sa.String(length=255), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('launched_at', DT, nullable=True),
    sa.Column('terminated_at', DT, nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_instances'))
    )
    op.create_table('shadow_pci_devices',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('compute_node_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=12), nullable=False),
    sa.Column('vendor_id', sa.String(length=4), nullable=False),
    sa.Column('product_id', sa.String(length=4), nullable=False),
    sa.Column('dev_type', sa.String(length=8), nullable=False),
    sa.Column('dev_id', sa.String(length=255), nullable=True),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=36), nullable=False),
    sa.Column('extra_info', sa.Text(), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=True),
    sa.Column('request_id', sa.String(length=36), nullable=True),
    sa.Column('numa_node', sa.Integer(), nullable=True),
    sa.Column('parent_addr', sa.String(length=12), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_pci_devices'))
    )
    op.create_table('shadow_services',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('binary', sa.String(length=255), nullable=True),
    sa.Column('topic', sa.String(length=255), nullable=True),
    sa.Column('report_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=255), nullable=True),
    sa.Column('last_seen_up', DT, nullable=True),
    sa.Column('forced_down', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='0', nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_services'))
    )
    op.create_table('shadow_virtual_interfaces',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('address', sa.String(length=255), nullable=True),
    sa.Column('network_id', sa.Integer(), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_virtual_interfaces'))
    )


def downgrade() -> None:
    op.drop_table('shadow_virtual_interfaces')
    op.drop_table('shadow_services')
    op.drop_table('shadow_pci_devices')
    op.drop_table('shadow_instances')
    op.drop_table('shadow_instance_system_metadata')
    op.drop_table('shadow_instance_metadata')
    op.drop_table('shadow_instance_info_caches')
    op.drop_table('shadow_instance_id_mappings')
    op.drop_table('shadow_instance_faults')
    op.drop_table('shadow_instance_extra')
    op.drop_table('shadow_instance_actions_events')
    op.drop_table('shadow_instance_actions')
    op.drop_table('shadow_compute_nodes')
    op.drop_table('shadow_block_device_mapping')
    op.drop_table('archive_unmaps')
