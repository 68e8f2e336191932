"""Per-session GRU hidden states kept by the server: LRU with a time to live and a size bound.

A click costs one GRU step from the stored state (GRU4Rec's hidden state summarises the session so
far, Hidasi et al. ICLR 2016), not a replay of the whole session. The store holds at most
``max_sessions`` states (LRU eviction: the memory bound is ``max_sessions`` x the state's bytes)
and forgets a session idle for ``ttl`` seconds. Thread-safe: FastAPI may call it from several
threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class SessionStore:
    def __init__(self, max_sessions: int, ttl: float, clock=time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.ttl = ttl
        self.clock = clock
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # oldest access first
        self._lock = threading.Lock()
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._data)

    def _expire(self, now: float) -> None:
        while self._data:
            sid, (t, _) = next(iter(self._data.items()))
            if now - t < self.ttl:
                break
            del self._data[sid]
            self.expired += 1

    def get(self, sid: str) -> Any | None:
        """The session's state, or None when unknown or expired."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            hit = self._data.get(sid)
            if hit is None:
                return None
            self._data.move_to_end(sid)
            self._data[sid] = (now, hit[1])
            return hit[1]

    def put(self, sid: str, state: Any) -> None:
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._data[sid] = (now, state)
            self._data.move_to_end(sid)
            while len(self._data) > self.max_sessions:
                self._data.popitem(last=False)
                self.evicted += 1

    def drop(self, sid: str) -> bool:
        with self._lock:
            return self._data.pop(sid, None) is not None
