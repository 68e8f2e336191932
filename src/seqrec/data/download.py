"""Fetch a dataset file over HTTP(S): SHA-256 verified, resumable, never half-written.

The file is streamed into ``<dest>.part`` and renamed onto ``dest`` (an atomic rename on one
file system) only once its SHA-256 matches, so ``dest`` is either absent or complete. A
transfer that breaks off leaves the ``.part`` file, and the next call resumes it with an HTTP
``Range`` request (starting over when the server ignores ranges). A wrong checksum removes
the ``.part`` file. Every failure is one :class:`~seqrec.errors.DownloadError` line.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from seqrec.errors import DownloadError

CHUNK = 1 << 16


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: str | Path, sha256: str, *, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` unless a file with this SHA-256 is already there."""
    dest = Path(dest)
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "seqrec", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the .part file is complete
            resp = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot reach the host ({reason}); fetch the file by hand "
                            f"into {dest.parent}/") from None
    if resp is not None:
        with resp:
            if start and resp.status != 206:
                start = 0  # the server ignored the range: start over
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            got = start
            try:
                with open(part, "ab" if start else "wb") as f, tqdm(
                        total=total, initial=start, unit="B", unit_scale=True, desc=dest.name,
                        disable=not progress, leave=False) as bar:
                    while block := resp.read(CHUNK):
                        f.write(block)
                        got += len(block)
                        bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(f"{url}: transfer broke off after {got:,} bytes ({exc}); run the "
                                    f"same command again to resume from {part}") from None
            if total is not None and got < total:
                raise DownloadError(f"{url}: transfer broke off after {got:,} of {total:,} bytes; run "
                                    f"the same command again to resume from {part}")
    digest = sha256_of(part)
    if digest != sha256:
        part.unlink()
        raise DownloadError(f"{url}: SHA-256 {digest} does not match the pinned {sha256}; the "
                            "download was removed")
    os.replace(part, dest)
    return dest
