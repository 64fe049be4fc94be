"""Alembic environment: runs on the connection handed in by ``serving.store.engine.upgrade``.

Run from code (the normal path), ``config.attributes["connection"]`` holds an open connection
inside a write transaction. Run from the ``alembic`` command line, the URL comes from
``-x url=...`` or ``ARSCORE_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "ARSCORE_DATABASE_URL", "sqlite:///var/arscore.db"
    )


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    from serving.store.engine import make_engine, write_transaction

    engine = make_engine(_url())
    try:
        with write_transaction(engine) as connection:
            _run(connection)
    finally:
        engine.dispose()
