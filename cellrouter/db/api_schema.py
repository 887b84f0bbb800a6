"""API database tier: the cell, instance and host mapping index plus the global tables.

SQLAlchemy Core tables (no ORM): hot lookups select straight from them. The
alembic tree ``migrations_api`` must produce exactly this metadata (a test
checks for drift); schema changes come as new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa

from cellrouter.db.types import NAMING_CONVENTION, DateTime, LongText, UUIDStr

__all__ = ["metadata"]

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", DateTime), sa.Column("updated_at", DateTime)]


def _cell_fk(nullable: bool) -> sa.Column:
    return sa.Column(
        "cell_id", sa.Integer, sa.ForeignKey("cell_mappings.id"), nullable=nullable, index=True
    )


cell_mappings = sa.Table(
    "cell_mappings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", UUIDStr, nullable=False, unique=True),
    sa.Column("name", sa.String(255)),
    sa.Column("transport_url", LongText, nullable=False),
    sa.Column("database_connection", LongText, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
)

instance_mappings = sa.Table(
    "instance_mappings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_uuid", UUIDStr, nullable=False, unique=True),
    _cell_fk(nullable=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255)),
    sa.Column("queued_for_delete", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
    sa.Index("ix_instance_mappings_user_id_project_id", "user_id", "project_id"),
    # Covering indexes of a list page's mappings in creation order (page shares);
    # the second also serves every lookup by project (and covers its cells).
    sa.Index("ix_instance_mappings_page_order", "queued_for_delete", "created_at", "cell_id"),
    sa.Index(
        "ix_instance_mappings_project_page_order",
        "project_id",
        "queued_for_delete",
        "created_at",
        "cell_id",
    ),
)

host_mappings = sa.Table(
    "host_mappings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("host", sa.String(255), nullable=False, unique=True),
    _cell_fk(nullable=False),
    *_timestamps(),
)

build_requests = sa.Table(
    "build_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_uuid", UUIDStr, nullable=False, unique=True),
    sa.Column("project_id", sa.String(255), nullable=False, index=True),
    sa.Column("instance", LongText),
    sa.Column("block_device_mappings", LongText),
    sa.Column("tags", sa.Text),
    *_timestamps(),
)

request_specs = sa.Table(
    "request_specs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_uuid", UUIDStr, nullable=False, unique=True),
    sa.Column("spec", LongText, nullable=False),
    *_timestamps(),
)

# -- global tables (the seeds' "API-level" list) ---------------------------------

instance_types = sa.Table(
    "instance_types",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("flavorid", sa.String(255), nullable=False, unique=True),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("root_gb", sa.Integer),
    sa.Column("ephemeral_gb", sa.Integer),
    sa.Column("swap", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rxtx_factor", sa.Float, server_default="1"),
    sa.Column("vcpu_weight", sa.Integer),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("description", sa.Text),
    *_timestamps(),
)

instance_type_projects = sa.Table(
    "instance_type_projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "instance_type_id",
        sa.Integer,
        sa.ForeignKey("instance_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("project_id", sa.String(255), nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("instance_type_id", "project_id"),
)

instance_type_extra_specs = sa.Table(
    "instance_type_extra_specs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "instance_type_id",
        sa.Integer,
        sa.ForeignKey("instance_types.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.String(255)),
    *_timestamps(),
    sa.UniqueConstraint("instance_type_id", "key"),
)

quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("resource", sa.String(255), nullable=False),
    sa.Column("hard_limit", sa.Integer),
    *_timestamps(),
    sa.UniqueConstraint("project_id", "resource"),
)

project_user_quotas = sa.Table(
    "project_user_quotas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("resource", sa.String(255), nullable=False),
    sa.Column("hard_limit", sa.Integer),
    *_timestamps(),
    sa.UniqueConstraint("user_id", "project_id", "resource"),
    sa.Index("ix_project_user_quotas_user_id_project_id", "user_id", "project_id"),
)

quota_classes = sa.Table(
    "quota_classes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_name", sa.String(255), nullable=False, index=True),
    sa.Column("resource", sa.String(255), nullable=False),
    sa.Column("hard_limit", sa.Integer),
    *_timestamps(),
    sa.UniqueConstraint("class_name", "resource"),
)

quota_usages = sa.Table(
    "quota_usages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255)),
    sa.Column("resource", sa.String(255), nullable=False),
    sa.Column("in_use", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("until_refresh", sa.Integer),
    *_timestamps(),
    sa.Index("ix_quota_usages_project_id_user_id", "project_id", "user_id"),
)

security_groups = sa.Table(
    "security_groups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("project_id", sa.String(255), nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("project_id", "name"),
)

security_group_rules = sa.Table(
    "security_group_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "parent_group_id",
        sa.Integer,
        sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("protocol", sa.String(255)),
    sa.Column("from_port", sa.Integer),
    sa.Column("to_port", sa.Integer),
    sa.Column("cidr", sa.String(43)),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("security_groups.id")),
    *_timestamps(),
)

security_group_default_rules = sa.Table(
    "security_group_default_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("protocol", sa.String(5)),
    sa.Column("from_port", sa.Integer),
    sa.Column("to_port", sa.Integer),
    sa.Column("cidr", sa.String(43)),
    *_timestamps(),
)

provider_fw_rules = sa.Table(
    "provider_fw_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("protocol", sa.String(5)),
    sa.Column("from_port", sa.Integer),
    sa.Column("to_port", sa.Integer),
    sa.Column("cidr", sa.String(43)),
    *_timestamps(),
)

key_pairs = sa.Table(
    "key_pairs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(255)),
    sa.Column("public_key", sa.Text),
    sa.Column("type", sa.String(10), nullable=False, server_default="ssh"),
    *_timestamps(),
    sa.UniqueConstraint("user_id", "name"),
)

migrations = sa.Table(
    "migrations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", UUIDStr, unique=True),
    sa.Column("instance_uuid", UUIDStr, index=True),
    sa.Column("source_compute", sa.String(255)),
    sa.Column("dest_compute", sa.String(255)),
    sa.Column("source_node", sa.String(255)),
    sa.Column("dest_node", sa.String(255)),
    sa.Column("dest_host", sa.String(255)),
    sa.Column("old_instance_type_id", sa.Integer),
    sa.Column("new_instance_type_id", sa.Integer),
    sa.Column("status", sa.String(255)),
    sa.Column("migration_type", sa.String(32)),
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cross_cell_move", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("user_id", sa.String(255)),
    sa.Column("project_id", sa.String(255)),
    *_timestamps(),
    sa.Index("ix_migrations_instance_uuid_status", "instance_uuid", "status"),
)

networks = sa.Table(
    "networks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", UUIDStr, unique=True),
    sa.Column("label", sa.String(255)),
    sa.Column("cidr", sa.String(43)),
    sa.Column("cidr_v6", sa.String(43)),
    sa.Column("bridge", sa.String(255)),
    sa.Column("vlan", sa.Integer),
    sa.Column("project_id", sa.String(255), index=True),
    sa.Column("host", sa.String(255)),
    *_timestamps(),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("resource_id", UUIDStr, primary_key=True),
    sa.Column("tag", sa.String(80), primary_key=True),
    sa.Index("ix_tags_tag", "tag"),
)

# -- operator bookkeeping --------------------------------------------------------

#: Per-cell resume point of ``map_instances``: every instance of the cell with
#: ``id <= last_instance_id`` has a mapping. Deleted with its cell.
instance_mapping_markers = sa.Table(
    "instance_mapping_markers",
    metadata,
    sa.Column(
        "cell_id",
        sa.Integer,
        sa.ForeignKey("cell_mappings.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("last_instance_id", sa.Integer, nullable=False),
    *_timestamps(),
)

#: The cell list's version: one row (``id`` 1) whose ``generation`` the mapping
#: store bumps in the same transaction as every cell create, update and delete,
#: so any process can tell in one cheap read whether its cached list is stale.
cell_generation = sa.Table(
    "cell_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)
