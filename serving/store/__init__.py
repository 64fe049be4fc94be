"""Database plumbing: engines and transactions (``engine``), many rows per statement
(``bulk``) and the Alembic migrations (``migrations/``). SQLite or PostgreSQL.

Imports settings only.
"""
