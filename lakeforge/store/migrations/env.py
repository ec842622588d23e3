"""Alembic environment. At run time the connection is handed in by lakeforge.store.migrate."""

from __future__ import annotations

from alembic import context


def _metadata():
    # Imported only here: autogenerate needs every service's tables; upgrades do not.
    from lakeforge.store.tables import metadata

    return metadata


# Our own version table: MLflow's tracking store, which may share this database, keeps its
# migrations in the default `alembic_version`.
VERSION_TABLE = "lakeforge_alembic_version"
config = context.config
connection = config.attributes.get("connection")
target_metadata = _metadata()

if connection is None:  # `alembic revision --autogenerate` from the command line
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
