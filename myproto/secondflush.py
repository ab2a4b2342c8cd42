"""
The store memcached's C{-C} makes: without CAS uniques, memcached tells a
flushed item only by the whole second it was stored in, so what is stored in
the second a C{flush_all} takes effect is flushed too (its C{t/flush-all.t}
checks this).  With CAS uniques it flushes exactly, as L{MemoryStore} does.
"""

from __future__ import annotations

import math

from myproto.store import Item, MemoryStore


class SecondFlushStore(MemoryStore):
    """
    A L{MemoryStore} without CAS uniques whose flushes reach to the end of
    the second they take effect in: an item stored before then is accepted
    and at once gone, as in memcached C{-C}.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Clock time until which what is stored is flushed on arrival.
        self._flushedUntil = 0.0

    def put(self, key: bytes, value: bytes, flags: int, expires: float) -> Item | None:
        item = super().put(key, value, flags, expires)
        if item is not None and self.now() < self._flushedUntil:
            # Stored (and counted), then flushed: the old value is gone and
            # the new one is not seen.
            self.remove(item)
        return item

    def _applyPendingFlush(self, now: float) -> None:
        flushAt = self._flushAt
        super()._applyPendingFlush(now)
        if flushAt is not None and self._flushAt is None:
            second = self.startedAt + math.floor(flushAt - self.startedAt)
            self._flushedUntil = second + 1
