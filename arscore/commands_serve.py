"""`arscore serve`: the HTTP API under uvicorn (uvloop + httptools), JSON logs.

The listening socket is bound here with TCP_NODELAY (accepted connections inherit it on Linux):
``uvicorn --workers N`` otherwise leaves the shared socket without it and every response on a
kept-alive connection waits ~44 ms for the peer's delayed ACK (uvicorn issue #3149).
Worker processes build the app from the environment (``serving.api.app:create_app``), so the
options given here are passed to them as ``ARSCORE_*`` variables.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

APP_FACTORY = "serving.api.app:create_app"


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket with TCP_NODELAY, shareable with worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _export(settings_overrides: dict[str, object]) -> None:
    """Pass command-line choices to the worker processes through the environment."""
    for name, value in settings_overrides.items():
        if value is not None:
            os.environ[f"ARSCORE_{name.upper()}"] = str(value)


def _ensure_pseudonym_key() -> None:
    """Use the configured key, else the local key file (created once) of the embedded setup."""
    from arscore.secrets import DEFAULT_KEY_FILE, KEY_ENV, KEY_FILE_ENV, load_pseudonym_key

    if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV):
        return
    load_pseudonym_key(create_default=True)
    os.environ[KEY_FILE_ENV] = str(DEFAULT_KEY_FILE.resolve())


def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: ARSCORE_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: ARSCORE_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="worker processes (default: ARSCORE_WORKERS)")
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS or a saved-model directory (default: ARSCORE_MODEL_URI)"
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLite or PostgreSQL URL (default: ARSCORE_DATABASE_URL)")
    ] = None,
) -> None:
    """Serve the scoring API (POST /v1/scores, /v1/history, /v1/models, /v1/audit, health)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from serving.api.json_logs import configure_logging
    from serving.settings import get_settings

    _export({"host": host, "port": port, "workers": workers})
    _export({"model_uri": model_uri, "database_url": database_url})
    _ensure_pseudonym_key()
    get_settings.cache_clear()
    settings = get_settings()
    log_config = configure_logging(settings.log_level, settings.access_log)
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=log_config,
        access_log=False,  # arscore.access logs route templates; uvicorn's logs raw paths
        server_header=False,
        proxy_headers=False,
    )
    sock = listening_socket(settings.host, settings.port)
    typer.echo(
        f"arscore serving on http://{settings.host}:{settings.port} "
        f"with {settings.workers} worker(s), model {settings.model_uri}",
        err=True,
    )
    if settings.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    """Add `serve` to the command line."""
    app.command("serve")(serve)
