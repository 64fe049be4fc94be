"""Alembic migrations of the serving database, shipped inside the package."""
