"""Structured (JSON) logs for the server, configured only by the entry point (``arscore serve``).

One JSON object per line: time, level, logger, message and any ``extra`` fields. Exceptions are
reduced to their type and the place they were raised (file, line, function): never a stack
trace, never an exception message, since either could carry request data and so a patient
identifier. Importing this module configures nothing.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import traceback
from datetime import UTC, datetime
from typing import Any

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def exception_site(exc: BaseException) -> dict[str, Any]:
    """Where an exception was raised: its type and innermost frame, without its message."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    site: dict[str, Any] = {"exc_type": type(exc).__name__}
    if frames:
        last = frames[-1]
        site.update(
            exc_file=os.path.basename(last.filename), exc_line=last.lineno, exc_func=last.name
        )
    return site


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON; exceptions as type and site only."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry.update(exception_site(record.exc_info[1]))
        return json.dumps(entry, default=str, ensure_ascii=False)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's API)
        """Never a traceback."""
        return ""


def logging_config(level: str = "INFO", access_log: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server and uvicorn, all through JsonFormatter.

    The access log is arscore's own (``arscore.access``, written by the metrics middleware with
    the route template); uvicorn's, which writes raw paths, stays below its level."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "arscore.access": {
                "handlers": [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": True,
            },
        },
    }


def configure_logging(level: str = "INFO", access_log: bool = True) -> dict[str, Any]:
    """Install JSON logging for the process; returns the config (uvicorn takes it too)."""
    config = logging_config(level, access_log)
    logging.config.dictConfig(config)
    return config
