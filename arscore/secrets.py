"""Where the pseudonymization key comes from: the environment or a file, never the repository."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from features.pseudonym import key_file, read_key

logger = logging.getLogger(__name__)

KEY_ENV = "ARSCORE_PSEUDONYM_KEY"
KEY_FILE_ENV = "ARSCORE_PSEUDONYM_KEY_FILE"
DEFAULT_KEY_FILE = Path("var/secrets/pseudonym.key")


def load_pseudonym_key(create_default: bool = True) -> bytes:
    """The HMAC key: $ARSCORE_PSEUDONYM_KEY, else the file in $ARSCORE_PSEUDONYM_KEY_FILE, else
    a local key file under var/secrets/ (created once, mode 0600, for the embedded defaults)."""
    configured = os.environ.get(KEY_FILE_ENV)
    key = read_key(os.environ.get(KEY_ENV), Path(configured) if configured else None)
    if key is not None:
        return key
    path = DEFAULT_KEY_FILE
    if path.exists() or not create_default:
        return key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    logger.warning(
        "created a local pseudonymization key at %s (set %s in production)", path, KEY_ENV
    )
    return key
