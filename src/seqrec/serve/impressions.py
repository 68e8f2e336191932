"""The impression log of A/B tests: one JSON line per list served, with its variant.

``state_dir/impressions-<pid>.jsonl`` (one file per worker process, so lines never interleave):
``{"ts", "variant", "user_id", "session_id", "items", "versions"}``. Lines are buffered and
flushed every second or 256 lines, and at shutdown.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class ImpressionLog:
    def __init__(self, state_dir: Path | None, flush_every: float = 1.0, max_buffer: int = 256) -> None:
        self.path = None if state_dir is None else state_dir / f"impressions-{os.getpid()}.jsonl"
        self._buf: list[str] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self.flush_every, self.max_buffer = flush_every, max_buffer

    def write(self, variant: str, user: str | None, session: str | None, items: list[str], versions: dict) -> None:
        if self.path is None:
            return
        line = json.dumps({"ts": time.time(), "variant": variant, "user_id": user, "session_id": session,
                           "items": items, "versions": versions})
        with self._lock:
            self._buf.append(line)
            if len(self._buf) >= self.max_buffer or time.monotonic() - self._last > self.flush_every:
                self._flush()

    def _flush(self) -> None:
        if not self._buf or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(self._buf) + "\n")
        self._buf.clear()
        self._last = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._flush()
