"""What runs in service: the HTTP API, the collectors' worklist, nightly batches, and below them
the server's history, the audit trail, access control, scoring, the decision policy and the
database plumbing.

Subpackages, top to bottom; each imports only those below it, siblings on one line never each
other (import-linter's layers contract in pyproject.toml holds this):

    api                  the HTTP shell (FastAPI): app, dependencies, schemas, routers
    worklist | batch     the collectors' queue and its actions; nightly scored files
    history | audit | access
                         the server's copy of claims; the hash-chained trail; keys and roles
    scoring | policy     model to numbers and reasons; the lawful next action
    store                database engines, bulk writes, migrations
    settings             the ARSCORE_ environment, validated at start (a module)

Only ``api`` imports FastAPI or Starlette; ``scoring`` and ``policy`` import no SQLAlchemy.
``serving`` never imports ``training`` or ``arscore``.
"""
