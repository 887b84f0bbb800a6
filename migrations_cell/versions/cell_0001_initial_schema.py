"""initial schema

Revision ID: cell_0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = 'cell_0001'
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of cellrouter.db.types as of this revision.
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table('compute_nodes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_nodes')),
    sa.UniqueConstraint('host', 'hypervisor_hostname', 'deleted', name=op.f('uq_compute_nodes_host_hypervisor_hostname_deleted')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_nodes_uuid'))
    )
    with op.batch_alter_table('compute_nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_compute_nodes_host'), ['host'], unique=False)
        batch_op.create_index('ix_compute_nodes_mapped_deleted', ['mapped', 'deleted'], unique=False)

    op.create_table('instance_id_mappings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_id_mappings'))
    )
    with op.batch_alter_table('instance_id_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_id_mappings_uuid'), ['uuid'], unique=False)

    op.create_table('instances',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    sa.UniqueConstraint('uuid', name=op.f('uq_instances_uuid'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_instances_deleted_created_at', ['deleted', 'created_at'], unique=False)
        batch_op.create_index('ix_instances_display_name', ['display_name'], unique=False)
        batch_op.create_index('ix_instances_host_deleted', ['host', 'deleted'], unique=False)
        batch_op.create_index('ix_instances_launched_at', ['launched_at'], unique=False)
        batch_op.create_index('ix_instances_project_id_deleted', ['project_id', 'deleted'], unique=False)
        batch_op.create_index('ix_instances_updated_at', ['updated_at'], unique=False)
        batch_op.create_index('ix_instances_vm_state', ['vm_state'], unique=False)

    op.create_table('services',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('host', 'binary', 'deleted', name=op.f('uq_services_host_binary_deleted')),
    sa.UniqueConstraint('host', 'topic', 'deleted', name=op.f('uq_services_host_topic_deleted')),
    sa.UniqueConstraint('uuid', name=op.f('uq_services_uuid'))
    )
    op.create_table('block_device_mapping',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_block_device_mapping_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_block_device_mapping')),
    sa.UniqueConstraint('uuid', name=op.f('uq_block_device_mapping_uuid'))
    )
    with op.batch_alter_table('block_device_mapping', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_block_device_mapping_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_block_device_mapping_volume_id'), ['volume_id'], unique=False)

    op.create_table('instance_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_actions_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_actions'))
    )
    with op.batch_alter_table('instance_actions', schema=None) as batch_op:
        batch_op.create_index('ix_instance_actions_instance_uuid_request_id', ['instance_uuid', 'request_id'], unique=False)

    op.create_table('instance_extra',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_extra_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_extra')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_instance_extra_instance_uuid'))
    )
    op.create_table('instance_faults',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('message', sa.String(length=255), nullable=True),
    sa.Column('details', LONGTEXT, nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_faults_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_faults'))
    )
    with op.batch_alter_table('instance_faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_faults_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('instance_info_caches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('network_info', LONGTEXT, nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_info_caches_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_info_caches')),
    sa.UniqueConstraint('instance_uuid', name=op.f('uq_instance_info_caches_instance_uuid'))
    )
    op.create_table('instance_metadata',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.Column('value', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_metadata_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_metadata'))
    )
    with op.batch_alter_table('instance_metadata', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_metadata_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('instance_system_metadata',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_system_metadata_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_system_metadata'))
    )
    with op.batch_alter_table('instance_system_metadata', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_system_metadata_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('pci_devices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.ForeignKeyConstraint(['compute_node_id'], ['compute_nodes.id'], name=op.f('fk_pci_devices_compute_node_id_compute_nodes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pci_devices')),
    sa.UniqueConstraint('compute_node_id', 'address', 'deleted', name=op.f('uq_pci_devices_compute_node_id_address_deleted'))
    )
    with op.batch_alter_table('pci_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pci_devices_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('virtual_interfaces',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('address', sa.String(length=255), nullable=True),
    sa.Column('network_id', sa.Integer(), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=True),
    sa.Column('created_at', DT, nullable=True),
    sa.Column('updated_at', DT, nullable=True),
    sa.Column('deleted_at', DT, nullable=True),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_virtual_interfaces_instance_uuid_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_virtual_interfaces')),
    sa.UniqueConstraint('address', 'deleted', name=op.f('uq_virtual_interfaces_address_deleted'))
    )
    with op.batch_alter_table('virtual_interfaces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_virtual_interfaces_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('instance_actions_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
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
    sa.ForeignKeyConstraint(['action_id'], ['instance_actions.id'], name=op.f('fk_instance_actions_events_action_id_instance_actions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_actions_events'))
    )
    with op.batch_alter_table('instance_actions_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_actions_events_action_id'), ['action_id'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    op.drop_table('instance_actions_events')
    op.drop_table('virtual_interfaces')
    op.drop_table('pci_devices')
    op.drop_table('instance_system_metadata')
    op.drop_table('instance_metadata')
    op.drop_table('instance_info_caches')
    op.drop_table('instance_faults')
    op.drop_table('instance_extra')
    op.drop_table('instance_actions')
    op.drop_table('block_device_mapping')
    op.drop_table('services')
    op.drop_table('instances')
    op.drop_table('instance_id_mappings')
    op.drop_table('compute_nodes')
