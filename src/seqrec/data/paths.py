"""Where the data tree is: ``SEQREC_DATA``, ``../shared/data``, or a folder given explicitly."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "SEQREC_DATA"


def data_dir(override: str | Path | None = None) -> Path:
    """Root of the data tree: ``override``, ``$SEQREC_DATA``, ``../shared/data``, or a
    ``shared/data`` found walking up from the package. Not checked for existence
    when given explicitly; errors come when files are read."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    default = Path.cwd().parent / "shared" / "data"
    if default.is_dir():
        return default.resolve()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return default
