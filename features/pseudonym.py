"""Keyed pseudonymization of patient identifiers (HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pandas as pd

from features.errors import ArscoreError

PATIENT_KEY_LENGTH = 20
MIN_KEY_BYTES = 16


def check_key(key: bytes) -> bytes:
    """Return the key if it is long enough to be a secret, else raise."""
    if len(key) < MIN_KEY_BYTES:
        raise ArscoreError(
            f"the pseudonymization key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def key_file(path: Path) -> bytes:
    """The key in the file at ``path``, surrounding white space stripped."""
    try:
        return check_key(Path(path).read_bytes().strip())
    except FileNotFoundError:
        raise ArscoreError(f"pseudonymization key file {path} does not exist") from None
    except OSError as exc:
        raise ArscoreError(f"pseudonymization key file {path}: {exc.strerror}") from None


def read_key(value: str | None, path: Path | None) -> bytes | None:
    """The key given as text, else the key in the file at ``path``; None when neither is given.
    The server and the command line both read the configured key through this."""
    if value:
        return check_key(value.encode("utf-8"))
    return None if path is None else key_file(path)


def pseudonymize_one(patient_id: str, key: bytes) -> str:
    """The patient key for one raw identifier: a truncated keyed HMAC, never reversible."""
    digest = hmac.new(check_key(key), patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "pk_" + digest[:PATIENT_KEY_LENGTH]


def pseudonymize(patient_ids: pd.Series, key: bytes) -> pd.Series:
    """Pseudonymize a column, hashing each distinct identifier once."""
    check_key(key)
    codes, uniques = pd.factorize(patient_ids.astype("string"), use_na_sentinel=True)
    mapped = [pseudonymize_one(str(value), key) for value in uniques]
    keys = pd.array(mapped, dtype="string").take(codes, allow_fill=True)
    return pd.Series(keys, index=patient_ids.index, name="patient_key", dtype="string")
