"""Cell database tier: the instances and everything that lives with them in one cell.

Every cell (cell0 included) has this schema, produced by ``migrations_cell``.
Soft-deleted rows carry ``deleted = id`` (0 while alive), so unique keys can
include ``deleted``.

Each table has a ``shadow_`` twin generated from it (same columns, the
primary key, no other constraint or index): ``db archive_deleted_rows`` moves
soft-deleted rows there, as Nova's shadow tables. ``archive_unmaps`` lists the
instances archived whose API-database rows may still exist (see
:mod:`cellrouter.db.archive`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cellrouter.db.types import NAMING_CONVENTION, DateTime, LongText, UUIDStr

__all__ = ["ARCHIVED_TABLES", "SHADOW_PREFIX", "archive_unmaps", "metadata", "shadow"]

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _soft_delete() -> list[sa.Column]:
    return [
        sa.Column("created_at", DateTime),
        sa.Column("updated_at", DateTime),
        sa.Column("deleted_at", DateTime),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    ]


def _instance_fk(**kw: Any) -> sa.Column[str]:
    return sa.Column(
        "instance_uuid", UUIDStr, sa.ForeignKey("instances.uuid"), nullable=False, **kw
    )


instances = sa.Table(
    "instances",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr, nullable=False, unique=True),
    sa.Column("project_id", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("host", sa.String(255)),
    sa.Column("node", sa.String(255)),
    sa.Column("display_name", sa.String(255)),
    sa.Column("display_description", sa.Text),
    sa.Column("hostname", sa.String(255)),
    sa.Column("vm_state", sa.String(255)),
    sa.Column("task_state", sa.String(255)),
    sa.Column("power_state", sa.Integer),
    sa.Column("instance_type_id", sa.Integer),
    sa.Column("memory_mb", sa.Integer),
    sa.Column("vcpus", sa.Integer),
    sa.Column("root_gb", sa.Integer),
    sa.Column("ephemeral_gb", sa.Integer),
    sa.Column("image_ref", sa.String(255)),
    sa.Column("key_name", sa.String(255)),
    sa.Column("availability_zone", sa.String(255)),
    sa.Column("launched_at", DateTime),
    sa.Column("terminated_at", DateTime),
    *_soft_delete(),
    sa.Index("ix_instances_project_id_deleted", "project_id", "deleted"),
    sa.Index("ix_instances_host_deleted", "host", "deleted"),
    sa.Index("ix_instances_deleted_created_at", "deleted", "created_at"),
    sa.Index("ix_instances_created_at", "created_at"),
    sa.Index("ix_instances_updated_at", "updated_at"),
    sa.Index("ix_instances_launched_at", "launched_at"),
    sa.Index("ix_instances_display_name", "display_name"),
    sa.Index("ix_instances_vm_state", "vm_state"),
)

instance_info_caches = sa.Table(
    "instance_info_caches",
    metadata,
    _id(),
    _instance_fk(unique=True),
    sa.Column("network_info", LongText),
    *_soft_delete(),
)

instance_extra = sa.Table(
    "instance_extra",
    metadata,
    _id(),
    _instance_fk(unique=True),
    sa.Column("numa_topology", sa.Text),
    sa.Column("pci_requests", sa.Text),
    sa.Column("flavor", sa.Text),
    sa.Column("vcpu_model", sa.Text),
    sa.Column("migration_context", sa.Text),
    sa.Column("keypairs", sa.Text),
    sa.Column("device_metadata", sa.Text),
    sa.Column("trusted_certs", sa.Text),
    sa.Column("resources", sa.Text),
    *_soft_delete(),
)

instance_metadata = sa.Table(
    "instance_metadata",
    metadata,
    _id(),
    _instance_fk(index=True),
    sa.Column("key", sa.String(255)),
    sa.Column("value", sa.String(255)),
    *_soft_delete(),
)

instance_system_metadata = sa.Table(
    "instance_system_metadata",
    metadata,
    _id(),
    _instance_fk(index=True),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.String(255)),
    *_soft_delete(),
)

instance_faults = sa.Table(
    "instance_faults",
    metadata,
    _id(),
    _instance_fk(index=True),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("message", sa.String(255)),
    sa.Column("details", LongText),
    sa.Column("host", sa.String(255)),
    *_soft_delete(),
)

instance_actions = sa.Table(
    "instance_actions",
    metadata,
    _id(),
    sa.Column("action", sa.String(255)),
    _instance_fk(),
    sa.Column("request_id", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("project_id", sa.String(255)),
    sa.Column("start_time", DateTime),
    sa.Column("finish_time", DateTime),
    sa.Column("message", sa.String(255)),
    *_soft_delete(),
    sa.Index("ix_instance_actions_instance_uuid_request_id", "instance_uuid", "request_id"),
)

instance_actions_events = sa.Table(
    "instance_actions_events",
    metadata,
    _id(),
    sa.Column("event", sa.String(255)),
    sa.Column(
        "action_id", sa.Integer, sa.ForeignKey("instance_actions.id"), nullable=False, index=True
    ),
    sa.Column("start_time", DateTime),
    sa.Column("finish_time", DateTime),
    sa.Column("result", sa.String(255)),
    sa.Column("traceback", sa.Text),
    sa.Column("host", sa.String(255)),
    sa.Column("details", sa.Text),
    *_soft_delete(),
)

instance_id_mappings = sa.Table(
    "instance_id_mappings",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr, nullable=False, index=True),
    *_soft_delete(),
)

services = sa.Table(
    "services",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr, unique=True),
    sa.Column("host", sa.String(255)),
    sa.Column("binary", sa.String(255)),
    sa.Column("topic", sa.String(255)),
    sa.Column("report_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled_reason", sa.String(255)),
    sa.Column("last_seen_up", DateTime),
    sa.Column("forced_down", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, server_default="0"),
    *_soft_delete(),
    sa.UniqueConstraint("host", "binary", "deleted"),
    sa.UniqueConstraint("host", "topic", "deleted"),
)

compute_nodes = sa.Table(
    "compute_nodes",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr, unique=True),
    sa.Column("service_id", sa.Integer),
    sa.Column("host", sa.String(255), index=True),
    sa.Column("hypervisor_hostname", sa.String(255)),
    sa.Column("hypervisor_type", sa.String(255)),
    sa.Column("vcpus", sa.Integer, nullable=False, server_default="0"),
    sa.Column("memory_mb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("local_gb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("vcpus_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("memory_mb_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("local_gb_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cpu_allocation_ratio", sa.Float),
    sa.Column("ram_allocation_ratio", sa.Float),
    sa.Column("disk_allocation_ratio", sa.Float),
    sa.Column("mapped", sa.Boolean, nullable=False, server_default=sa.false()),
    *_soft_delete(),
    sa.UniqueConstraint("host", "hypervisor_hostname", "deleted"),
    sa.Index("ix_compute_nodes_mapped_deleted", "mapped", "deleted"),
)

pci_devices = sa.Table(
    "pci_devices",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr),
    sa.Column("compute_node_id", sa.Integer, sa.ForeignKey("compute_nodes.id"), nullable=False),
    sa.Column("address", sa.String(12), nullable=False),
    sa.Column("vendor_id", sa.String(4), nullable=False),
    sa.Column("product_id", sa.String(4), nullable=False),
    sa.Column("dev_type", sa.String(8), nullable=False),
    sa.Column("dev_id", sa.String(255)),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("status", sa.String(36), nullable=False),
    sa.Column("extra_info", sa.Text),
    sa.Column("instance_uuid", UUIDStr, index=True),
    sa.Column("request_id", sa.String(36)),
    sa.Column("numa_node", sa.Integer),
    sa.Column("parent_addr", sa.String(12)),
    *_soft_delete(),
    sa.UniqueConstraint("compute_node_id", "address", "deleted"),
)

block_device_mapping = sa.Table(
    "block_device_mapping",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr, unique=True),
    _instance_fk(index=True),
    sa.Column("source_type", sa.String(255)),
    sa.Column("destination_type", sa.String(255)),
    sa.Column("guest_format", sa.String(255)),
    sa.Column("device_type", sa.String(255)),
    sa.Column("disk_bus", sa.String(255)),
    sa.Column("boot_index", sa.Integer),
    sa.Column("device_name", sa.String(255)),
    sa.Column("delete_on_termination", sa.Boolean, server_default=sa.false()),
    sa.Column("snapshot_id", UUIDStr),
    sa.Column("volume_id", UUIDStr, index=True),
    sa.Column("volume_size", sa.Integer),
    sa.Column("image_id", sa.String(36)),
    sa.Column("no_device", sa.Boolean),
    sa.Column("connection_info", LongText),
    sa.Column("tag", sa.String(255)),
    sa.Column("attachment_id", UUIDStr),
    *_soft_delete(),
)

virtual_interfaces = sa.Table(
    "virtual_interfaces",
    metadata,
    _id(),
    sa.Column("uuid", UUIDStr),
    sa.Column("address", sa.String(255)),
    sa.Column("network_id", sa.Integer),
    _instance_fk(index=True),
    sa.Column("tag", sa.String(255)),
    *_soft_delete(),
    sa.UniqueConstraint("address", "deleted"),
)


#: The tables ``db archive_deleted_rows`` empties of soft-deleted rows, parents first.
ARCHIVED_TABLES: tuple[sa.Table, ...] = tuple(metadata.sorted_tables)

SHADOW_PREFIX = "shadow_"


def _shadow_of(table: sa.Table) -> sa.Table:
    """``table``'s shadow: its columns (types, nullability, server defaults) and primary key.

    No foreign key, unique key or index: archived rows are written once, in
    bulk, and read rarely; the primary key keeps a row from being archived twice.
    """
    columns = [
        sa.Column(
            column.name,
            column.type,
            primary_key=column.primary_key,
            autoincrement=False,
            nullable=column.nullable,
            server_default=(
                None
                if column.server_default is None
                else sa.DefaultClause(column.server_default.arg)  # type: ignore[attr-defined]
            ),
        )
        for column in table.columns
    ]
    return sa.Table(SHADOW_PREFIX + table.name, metadata, *columns)


_SHADOWS = {table.name: _shadow_of(table) for table in ARCHIVED_TABLES}


def shadow(table: sa.Table) -> sa.Table:
    """The shadow table of ``table`` (one of :data:`ARCHIVED_TABLES`)."""
    return _SHADOWS[table.name]


archive_unmaps = sa.Table(
    "archive_unmaps",
    metadata,
    sa.Column("instance_uuid", UUIDStr, primary_key=True),
    sa.Column("created_at", DateTime),
)
