"""API keys: hashed at rest, authenticated in constant time, cached, revocable; the CLI."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from arscore.commands_users import register
from features.errors import ArscoreError
from serving.access.keys import (
    ROLES,
    KeyStore,
    NotAuthenticated,
    Principal,
    RoleForbidden,
    require_role,
)
from serving.settings import get_settings
from tests.serving.conftest import count_statements


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def stored_rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text("SELECT * FROM api_keys"))]


def test_keys_create_token_stored_only_as_hash(db_engine):
    key_id, token = KeyStore(db_engine).create("scorer", "billing system")

    assert re.fullmatch(rf"ars_{key_id}_[A-Za-z0-9_-]{{43}}", token)
    secret = token.split("_", 2)[2]
    rows = stored_rows(db_engine)
    assert len(rows) == 1
    stored_text = " ".join(str(value) for value in rows[0])
    assert token not in stored_text and secret not in stored_text
    assert hashlib.sha256(token.encode()).hexdigest() in stored_text


@pytest.mark.parametrize("role", ROLES)
def test_keys_authenticate_valid_token_returns_principal(db_engine, role):
    store = KeyStore(db_engine)
    key_id, token = store.create(role)

    assert store.authenticate(token) == Principal(key_id=key_id, role=role)
    assert KeyStore(db_engine).authenticate(token) == Principal(key_id=key_id, role=role)


def test_keys_authenticate_wrong_or_malformed_token_returns_none(db_engine):
    store = KeyStore(db_engine)
    key_id, token = store.create("scorer")
    other_id, _ = store.create("admin")
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    for candidate in [
        wrong_secret,
        f"ars_{other_id}_{token.split('_', 2)[2]}",  # right secret, another key's id
        f"ars_ffffffffffffffff_{token.split('_', 2)[2]}",  # unknown key id
        token.replace("ars_", "xyz_", 1),
        f"ars_{key_id}_",
        "",
        None,
        "Bearer " + token,
    ]:
        assert store.authenticate(candidate) is None, candidate


def test_keys_revoked_token_returns_none(db_engine):
    store = KeyStore(db_engine)
    key_id, token = store.create("collector")
    assert store.authenticate(token) is not None  # now cached

    assert store.revoke(key_id) is True
    assert store.authenticate(token) is None
    assert KeyStore(db_engine).authenticate(token) is None
    assert store.revoke(key_id) is False
    assert store.revoke("unknown") is False


def test_keys_revoked_elsewhere_expires_from_cache_after_ttl(db_engine):
    ticker = Ticker()
    server = KeyStore(db_engine, cache_ttl_seconds=60, monotonic=ticker)
    key_id, token = server.create("scorer")
    assert server.authenticate(token) is not None

    KeyStore(db_engine).revoke(key_id)  # e.g. `arscore keys revoke` in another process
    ticker.seconds = 59
    still_cached = server.authenticate(token)
    ticker.seconds = 61

    assert still_cached is not None
    assert server.authenticate(token) is None


def test_keys_authenticate_cached_token_costs_no_query(db_engine):
    store = KeyStore(db_engine)
    _, token = store.create("scorer")
    queries = count_statements(db_engine, "FROM api_keys")

    for _ in range(5):
        assert store.authenticate(token) is not None

    assert len(queries) == 1


def test_keys_cache_is_bounded_lru(db_engine):
    store = KeyStore(db_engine, cache_size=2)
    tokens = [store.create("scorer")[1] for _ in range(3)]
    queries = count_statements(db_engine, "FROM api_keys")

    for token in tokens:  # 3 misses; the first token is evicted by the third
        store.authenticate(token)
    store.authenticate(tokens[2])  # hit
    store.authenticate(tokens[0])  # miss again

    assert len(queries) == 4


def test_keys_create_unknown_role_refused(db_engine):
    with pytest.raises(ArscoreError, match="unknown role 'root'"):
        KeyStore(db_engine).create("root")
    with pytest.raises(IntegrityError), db_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, role, label, token_sha256, created_at) "
                "VALUES ('k', 'root', '', :h, CURRENT_TIMESTAMP)"
            ),
            {"h": "0" * 64},
        )


def test_keys_list_shows_roles_and_revocation_without_secrets(db_engine):
    store = KeyStore(db_engine)
    first, _ = store.create("auditor", "compliance")
    second, _ = store.create("admin")
    store.revoke(first)

    listed = {key.key_id: key for key in store.list()}

    assert set(listed) == {first, second}
    assert (listed[first].role, listed[first].label) == ("auditor", "compliance")
    assert listed[first].revoked_at is not None and listed[second].revoked_at is None
    assert not hasattr(listed[first], "token_sha256")


def test_require_role_allowed_role_returns_principal():
    principal = Principal("k1", "collector")

    assert require_role(principal, "collector", "admin") is principal


def test_require_role_missing_principal_raises_not_authenticated():
    with pytest.raises(NotAuthenticated):
        require_role(None, "scorer")


def test_require_role_other_role_raises_forbidden():
    with pytest.raises(RoleForbidden, match="role 'scorer' may not do this"):
        require_role(Principal("k1", "scorer"), "auditor", "collector")
    with pytest.raises(RoleForbidden, match="needs admin"):
        require_role(Principal("k2", "auditor"))


def test_require_role_admin_passes_every_check():
    admin = Principal("k3", "admin")

    assert require_role(admin, "auditor") is admin
    assert require_role(admin) is admin


def test_require_role_unknown_role_name_is_a_programming_error():
    with pytest.raises(ValueError, match="auditer"):
        require_role(Principal("k1", "auditor"), "auditer")


@pytest.fixture
def cli(db_url, monkeypatch):
    monkeypatch.setenv("ARSCORE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_keys_create_list_revoke_round_trip(cli, db_engine):
    created = cli(
        "keys", "create", "--system", "exports", "--role", "auditor", "--label", "compliance team"
    )
    token = re.search(r"token:\s+(\S+)", created.output).group(1)
    key_id = re.search(r"key_id:\s+(\S+)", created.output).group(1)
    store = KeyStore(db_engine)
    assert store.authenticate(token) == Principal(key_id, "auditor", system="exports")

    listed = cli("keys", "list")
    revoked = cli("keys", "revoke", key_id)
    again = cli("keys", "revoke", key_id)

    assert created.exit_code == listed.exit_code == revoked.exit_code == 0
    assert key_id in listed.output and "auditor" in listed.output
    assert "system exports" in listed.output
    assert token.split("_", 2)[2] not in listed.output
    assert KeyStore(db_engine).authenticate(token) is None
    assert again.exit_code == 1 and "no active key" in again.output


def test_cli_keys_create_unknown_role_exits_1(cli, db_engine):
    result = cli("keys", "create", "--system", "exports", "--role", "root")

    assert result.exit_code == 1
    assert "unknown role" in result.output
    assert stored_rows(db_engine) == []
