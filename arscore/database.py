"""The configured database for CLI commands, migrated to head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from serving.settings import get_settings
from serving.store.engine import make_engine, upgrade


@contextmanager
def migrated_engine() -> Iterator[Engine]:
    """The database of ARSCORE_DATABASE_URL, migrated to head (idempotent), disposed afterwards."""
    engine = make_engine(get_settings().database_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
