"""Alembic environment: migrations run on a connection handed over by ``store.database.migrate``."""

from alembic import context

from voxline.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the call store's migrations run through voxline.store.database.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
