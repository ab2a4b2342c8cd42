"""
Eviction summaries for the log: evictions are counted on the request path,
and logged only from a timer, as one line per period that had any.
"""

from __future__ import annotations

from twisted.logger import Logger

from myproto.store import MemoryStore

# Seconds between two summaries.
SUMMARY_INTERVAL = 60.0


class EvictionSummary:
    """
    Logs how many items the store evicted since the last summary.

    @ivar interval: the seconds between calls to L{report}, for the message.
    """

    log = Logger()

    def __init__(self, store: MemoryStore, interval: float = SUMMARY_INTERVAL) -> None:
        self._store = store
        self.interval = interval
        self._evictions = store.stats.evictions
        self._unfetched = store.stats.evictedUnfetched

    def report(self) -> None:
        """
        Log the evictions since the last call, if there were any.
        """
        stats = self._store.stats
        evictions = stats.evictions
        unfetched = stats.evictedUnfetched
        # "stats reset" zeroes the counters; count from zero then.
        count = evictions - self._evictions if evictions >= self._evictions else evictions
        never = unfetched - self._unfetched if unfetched >= self._unfetched else unfetched
        self._evictions = evictions
        self._unfetched = unfetched
        if count:
            self.log.info(
                "Evicted {count} items in the last {interval:.0f}s ({unfetched} never"
                " fetched); {bytes} of {limit} bytes in use",
                count=count,
                interval=self.interval,
                unfetched=never,
                # What -m bounds: what the items cost (stats' "bytes" is
                # memcached's smaller count of them).
                bytes=self._store.cost,
                limit=self._store.maxBytes,
            )
