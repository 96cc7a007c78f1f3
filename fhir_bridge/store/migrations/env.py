"""Alembic environment: the connection comes from fhir_bridge.store.database.migrate()."""

from alembic import context

from fhir_bridge.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through fhir_bridge.store.database.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
