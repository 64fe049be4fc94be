"""``arscore users ...`` and ``arscore keys ...``: the people who use arscore and their API keys.

A key is issued to a user (``--user``: it acts in the user's role and stops when the user is
disabled) or to a system integration (``--system``, with its ``--role``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from arscore.database import migrated_engine
from features.errors import ArscoreError
from serving.access.keys import ROLES, KeyStore
from serving.access.users import UserStore

users_app = typer.Typer(
    help="Users: create, list, disable (a disabled user's keys stop working).",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="API keys of a user or a system: create (token shown once), list, revoke.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``users`` and ``keys`` command groups to the arscore CLI."""
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@users_app.command("create")
def users_create(
    username: Annotated[
        str, typer.Option(help="lower-case login name, fixed for life (a-z, 0-9, . _ -)")
    ],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    display_name: Annotated[str, typer.Option(help="the person's name as shown")] = "",
) -> None:
    """Create a user; then issue them a key with `arscore keys create --user USERNAME`."""
    with migrated_engine() as engine:
        try:
            user = UserStore(engine).create(username, role, display_name)
        except ArscoreError as error:
            raise _fail(str(error)) from None
    typer.echo(f"created user {user.username} ({user.role})")


@users_app.command("list")
def users_list() -> None:
    """List users, active and disabled."""
    with migrated_engine() as engine:
        users = UserStore(engine).list()
    table = Table("username", "display name", "role", "created_at", "status")
    for user in users:
        status = f"disabled {user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else "active"
        created = f"{user.created_at:%Y-%m-%d %H:%M}"
        table.add_row(user.username, user.display_name, user.role, created, status)
    Console(width=120).print(table)


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="the username shown by `users list`")],
) -> None:
    """Disable a user: their keys stop working (in running servers within a minute)."""
    with migrated_engine() as engine:
        disabled = UserStore(engine).disable(username)
    if not disabled:
        raise _fail(f"no active user '{username}'")
    typer.echo(f"disabled {username}")


@keys_app.command("create")
def keys_create(
    user: Annotated[
        str | None, typer.Option(help="issue the key to this user (in the user's role)")
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="issue the key to this system integration, e.g. epic-rcm")
    ] = None,
    role: Annotated[
        str | None, typer.Option(help=f"a system key's role: one of {', '.join(ROLES)}")
    ] = None,
    label: Annotated[str, typer.Option(help="what the key is for")] = "",
) -> None:
    """Create an API key for a user or a system and print its token (shown only this once)."""
    if (user is None) == (system is None):
        raise _fail("name the key's owner: --user USERNAME or --system NAME (one of them)")
    if system is not None and role is None:
        raise _fail(f"a system key needs --role: one of {', '.join(ROLES)}")
    with migrated_engine() as engine:
        try:
            key_id, token = KeyStore(engine).create(role, label, user=user, system=system)
            owner = UserStore(engine).get(user) if user is not None else None
        except ArscoreError as error:
            raise _fail(str(error)) from None
    typer.echo(f"key_id: {key_id}")
    typer.echo(f"owner:  {'user ' + user if user else 'system ' + str(system)}")
    typer.echo(f"role:   {owner.role if owner is not None else role}")
    typer.echo(f"token:  {token}")
    typer.echo(
        "Store the token now: it is kept only as a hash and cannot be shown again.", err=True
    )


@keys_app.command("list")
def keys_list() -> None:
    """List API keys with their owners (never their tokens)."""
    with migrated_engine() as engine:
        keys = KeyStore(engine).list()
    table = Table("key_id", "owner", "role", "label", "created_at", "status")
    for key in keys:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        owner = f"user {key.user}" if key.user else f"system {key.system}" if key.system else "-"
        created = f"{key.created_at:%Y-%m-%d %H:%M}"
        table.add_row(key.key_id, owner, key.role, key.label, created, status)
    Console(width=140).print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key_id shown by `keys list`")],
) -> None:
    """Revoke an API key (other server workers stop accepting it within a minute)."""
    with migrated_engine() as engine:
        revoked = KeyStore(engine).revoke(key_id)
    if not revoked:
        raise _fail(f"no active key with key_id '{key_id}'")
    typer.echo(f"revoked {key_id}")
