"""Writing output files so that a failed run leaves nothing half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from features.errors import ArscoreError


def write_frame_atomic(frame: pd.DataFrame, out: Path) -> Path:
    """Write a frame to .parquet or .csv through a temporary file renamed into place."""
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ArscoreError(f"{out}: expected a .parquet or .csv output file")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if out.suffix == ".parquet":
            frame.to_parquet(temp_name, index=False)
        else:
            frame.to_csv(temp_name, index=False, date_format="%Y-%m-%d")
        os.replace(temp_name, out)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return out
