"""Alembic environment. At run time the connection is handed in by lakeforge.store.migrate."""

from __future__ import annotations

from alembic import context


def _metadata():
    # Imported only here: autogenerate needs every service's tables; upgrades do not.
    from lakeforge.store.tables import metadata

    return metadata


config = context.config
connection = config.attributes.get("connection")
target_metadata = _metadata()

if connection is None:  # `alembic revision --autogenerate` from the command line
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
