"""Users and the keys issued to them or to systems: roles, disabling, the CLI; on SQLite and
PostgreSQL."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from arscore.commands_users import register
from features.errors import ArscoreError
from serving.access.keys import KeyStore, Principal
from serving.access.users import UserError, UserStore
from serving.settings import get_settings
from tests.serving.access.test_keys import Ticker
from tests.serving.conftest import FakeClock


def test_users_create_list_disable_round_trip(db_engine, clock):
    users = UserStore(db_engine, clock=clock)
    created = users.create("dana", "collector", "  Dana Reyes ")
    users.create("ali", "approver")
    clock.advance(hours=1)

    assert users.disable("dana") is True
    assert users.disable("dana") is False and users.disable("nobody") is False
    listed = {user.username: user for user in users.list()}
    assert list(listed) == ["ali", "dana"]
    assert (created.display_name, created.active, created.disabled_at) == ("Dana Reyes", True, None)
    dana = listed["dana"]
    assert (dana.role, dana.active) == ("collector", False)
    assert dana.created_at == FakeClock().now and dana.disabled_at == clock.now
    assert listed["ali"].active and users.get("ali") == listed["ali"]


def test_users_create_taken_username_refused_even_when_disabled(db_engine):
    users = UserStore(db_engine)
    users.create("dana", "collector")
    users.disable("dana")

    with pytest.raises(UserError, match="already exists"):
        users.create("dana", "admin")


@pytest.mark.parametrize(
    ("username", "role", "message"),
    [
        ("Dana", "collector", "expected 1 to 64 of a-z"),
        ("dana@example.org", "collector", "expected 1 to 64 of a-z"),
        ("-dana", "collector", "starting with a letter or digit"),
        ("d" * 65, "collector", "expected 1 to 64"),
        ("dana", "root", "unknown role 'root'"),
    ],
)
def test_users_create_bad_name_or_role_refused(db_engine, username, role, message):
    with pytest.raises(UserError, match=message):
        UserStore(db_engine).create(username, role)
    assert UserStore(db_engine).list() == []


def test_keys_for_user_act_in_the_users_role_and_name_the_user(db_engine):
    UserStore(db_engine).create("dana", "collector")
    keys = KeyStore(db_engine)
    key_id, token = keys.create(user="dana", label="dana's laptop")
    same, _ = keys.create("collector", user="dana")

    assert keys.authenticate(token) == Principal(key_id, "collector", "dana", None)
    assert KeyStore(db_engine).authenticate(token).scope == "user:dana"
    listed = {key.key_id: key for key in keys.list()}
    assert (listed[key_id].user, listed[same].user, listed[key_id].system) == ("dana", "dana", None)


def test_keys_for_user_refused_for_another_role_unknown_or_disabled_user(db_engine):
    users, keys = UserStore(db_engine), KeyStore(db_engine)
    users.create("dana", "collector")
    users.create("old", "approver")
    users.disable("old")

    with pytest.raises(UserError, match="has the role 'collector'"):
        keys.create("admin", user="dana")
    with pytest.raises(UserError, match="no user 'nobody'"):
        keys.create(user="nobody")
    with pytest.raises(UserError, match="'old' is disabled"):
        keys.create(user="old")
    assert keys.list() == []


def test_keys_for_system_have_their_own_role_and_name_the_system(db_engine):
    keys = KeyStore(db_engine)
    key_id, token = keys.create("scorer", "nightly pushes", system="epic-rcm")

    assert keys.authenticate(token) == Principal(key_id, "scorer", None, "epic-rcm")
    assert keys.authenticate(token).scope == "system:epic-rcm"
    with pytest.raises(ArscoreError, match="not both"):
        keys.create("scorer", user="dana", system="epic-rcm")
    with pytest.raises(UserError, match="system name 'Epic RCM'"):
        keys.create("scorer", system="Epic RCM")
    with pytest.raises(ArscoreError, match="needs a role"):
        keys.create(system="epic-rcm")


def test_keys_table_refuses_a_key_of_both_a_user_and_a_system(db_engine):
    UserStore(db_engine).create("dana", "collector")
    with pytest.raises(IntegrityError), db_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, role, label, token_sha256, created_at, username, "
                "system_name) VALUES ('k', 'collector', '', :h, CURRENT_TIMESTAMP, 'dana', 'x')"
            ),
            {"h": "0" * 64},
        )


def test_keys_of_disabled_user_stop_working(db_engine):
    UserStore(db_engine).create("dana", "collector")
    ticker = Ticker()
    server = KeyStore(db_engine, monotonic=ticker)  # a running server's store, with its cache
    _, token = server.create(user="dana")
    assert server.authenticate(token) is not None

    UserStore(db_engine).disable("dana")  # `arscore users disable` in another process
    assert KeyStore(db_engine).authenticate(token) is None
    ticker.seconds = server.cache_ttl_seconds + 1
    assert server.authenticate(token) is None


def test_keys_forget_user_stops_cached_keys_at_once(db_engine):
    UserStore(db_engine).create("dana", "collector")
    store = KeyStore(db_engine)
    _, token = store.create(user="dana")
    _, other = store.create("scorer", system="epic-rcm")
    assert store.authenticate(token) is not None and store.authenticate(other) is not None

    UserStore(db_engine).disable("dana")
    store.forget_user("dana")

    assert store.authenticate(token) is None
    assert store.authenticate(other) is not None


@pytest.fixture
def cli(db_url, monkeypatch):
    monkeypatch.setenv("ARSCORE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_users_create_list_disable_and_a_users_key(cli, db_engine):
    created = cli("users", "create", "--username", "dana", "--role", "collector",
                  "--display-name", "Dana Reyes")  # fmt: skip
    key = cli("keys", "create", "--user", "dana", "--label", "laptop")
    token = re.search(r"token:\s+(\S+)", key.output).group(1)
    working = KeyStore(db_engine).authenticate(token)
    disabled = cli("users", "disable", "dana")
    listed = cli("users", "list")
    keys = cli("keys", "list")

    assert created.exit_code == key.exit_code == disabled.exit_code == listed.exit_code == 0
    assert "owner:  user dana" in key.output and "role:   collector" in key.output
    assert working == Principal(working.key_id, "collector", "dana")
    assert KeyStore(db_engine).authenticate(token) is None
    assert "Dana Reyes" in listed.output and "disabled" in listed.output
    assert "user dana" in keys.output
    again = cli("users", "disable", "dana")
    assert again.exit_code == 1 and "no active user 'dana'" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--role", "scorer"), "--user USERNAME or --system NAME"),
        (("keys", "create", "--user", "a", "--system", "b"), "--user USERNAME or --system NAME"),
        (("keys", "create", "--system", "epic-rcm"), "a system key needs --role"),
        (("keys", "create", "--user", "nobody"), "no user 'nobody'"),
        (("users", "create", "--username", "Dana", "--role", "collector"), "expected 1 to 64"),
    ],
)
def test_cli_keys_and_users_bad_requests_exit_1_and_write_nothing(cli, db_engine, args, message):
    result = cli(*args)

    assert result.exit_code == 1
    assert message in result.output
    assert KeyStore(db_engine).list() == [] and UserStore(db_engine).list() == []
