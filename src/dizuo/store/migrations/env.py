"""Alembic environment: runs on the connection handed in by ``Database.upgrade``."""

from alembic import context

from dizuo.store.partitions import is_partition

connection = context.config.attributes["connection"]
target_metadata = context.config.attributes.get("target_metadata")


def include_name(name: str | None, kind: str, _: object) -> bool:
    """Autogenerate compares the models with the parents of partitioned tables, not their months."""
    return kind != "table" or target_metadata is None or not is_partition(name or "", target_metadata)


context.configure(
    connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
)
with context.begin_transaction():
    context.run_migrations()
