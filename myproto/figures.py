"""
What the dashboard shows, as JSON-ready values; sans-IO.

Every figure comes from what C{stats} reports (L{generalStats},
L{settingsStats}) or from the counters those are made of.  A L{Sampler},
told to L{Sampler.sample} once a second by the web layer
(L{myproto.dashboard}), keeps the last five minutes of the counters, from
which come the commands per second by kind and the hit ratios, and the last
minute of the per-command latency histograms (L{myproto.metrics}), from
which come the percentiles.  Item sizes per slab class come from a walk of
the items, one batch per step (L{SizeWalk}), run every few seconds while
someone looks.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from typing import Any, Optional

from myproto import __version__
from myproto.cache import Cache
from myproto.commands.stats import generalStats, settingsStats
from myproto.metrics import BUCKETS
from myproto.store import SLAB_SIZES

# Samples kept: one a second for five minutes.
HISTORY = 300

# The latency percentiles cover this many seconds.
LATENCY_WINDOW = 60

# Hit ratios are given over these windows, in seconds.
RATIO_WINDOWS = (60, 300)

# Items counted per step of a L{SizeWalk}.
SIZE_BATCH = 2000

# The busiest key prefixes shown (with C{stats detail on}).
TOP_PREFIXES = 10

# The counters sampled: L{ServerStats} attributes, then the store's.
_COUNTERS = (
    "cmdGet",
    "cmdSet",
    "cmdTouch",
    "cmdFlush",
    "cmdMeta",
    "getHits",
    "getMisses",
    "deleteHits",
    "deleteMisses",
    "incrHits",
    "incrMisses",
    "decrHits",
    "decrMisses",
    "casHits",
    "casMisses",
    "casBadval",
    "touchHits",
    "touchMisses",
    "bytesRead",
    "bytesWritten",
)
_STORE_COUNTERS = ("evictions", "reclaimed", "getExpired", "expiredUnfetched")

# Commands per second by kind: the counters each kind sums.
RATE_KINDS: dict[str, tuple[str, ...]] = {
    "get": ("cmdGet",),
    "set": ("cmdSet",),
    "delete": ("deleteHits", "deleteMisses"),
    "incr": ("incrHits", "incrMisses"),
    "decr": ("decrHits", "decrMisses"),
    "touch": ("cmdTouch",),
    "flush": ("cmdFlush",),
    "meta": ("cmdMeta",),
}

# Hit ratios: (hit counters, miss counters) by kind.
RATIO_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "get": (("getHits",), ("getMisses",)),
    "touch": (("touchHits",), ("touchMisses",)),
    "cas": (("casHits",), ("casMisses", "casBadval")),
    "incr/decr": (("incrHits", "decrHits"), ("incrMisses", "decrMisses")),
}

# The percentiles of the latency table.
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


class Sample:
    """
    The counters at one moment.

    @ivar time: clock seconds.
    @ivar counters: counter values by attribute name.
    @ivar bytes: the bytes held.
    @ivar items: the items held.
    @ivar connections: the open client connections.
    """

    __slots__ = ("time", "counters", "bytes", "items", "connections")

    def __init__(self, cache: Cache) -> None:
        stats = cache.stats
        store = cache.store
        self.time = store.now()
        counters = {name: getattr(stats, name) for name in _COUNTERS}
        for name in _STORE_COUNTERS:
            counters[name] = getattr(store.stats, name)
        self.counters = counters
        self.bytes = store.bytes
        self.items = len(store)
        self.connections = stats.currConnections


def _histograms(cache: Cache) -> dict[str, tuple[list[int], float]]:
    found = getattr(cache.timings, "histograms", None) or {}
    return {command: (list(h.counts), h.total) for command, h in found.items()}


class Sampler:
    """
    The recent history of one cache's counters and latencies.

    @ivar samples: one L{Sample} a second, oldest first.
    @ivar sizes: the last L{SizeWalk}'s result, or L{None} before the first.
    @ivar sizesAt: clock seconds when it finished.
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.samples: deque[Sample] = deque(maxlen=HISTORY + 1)
        self._latencies: deque[tuple[float, dict[str, tuple[list[int], float]]]] = deque(
            maxlen=LATENCY_WINDOW + 1
        )
        self.sizes: Optional[list[dict[str, int]]] = None
        self.sizesAt = 0.0

    def sample(self) -> None:
        """
        Note the counters and the latency histograms as they are now.
        """
        sample = Sample(self.cache)
        self.samples.append(sample)
        self._latencies.append((sample.time, _histograms(self.cache)))

    def sizeWalk(self) -> SizeWalk:
        """
        @return: a new walk that, when exhausted, sets L{sizes}.
        """
        return SizeWalk(self.cache, self._sized)

    def _sized(self, classes: list[dict[str, int]]) -> None:
        self.sizes = classes
        self.sizesAt = self.cache.store.now()

    def history(self, count: int) -> dict[str, Any]:
        """
        @param count: how many of the latest seconds to give.
        @return: per-second series, oldest first: C{t} (unix seconds),
            C{rates} (commands per second by kind), C{hitRatio} (the get hit
            ratio in that second, or L{None} without gets), C{bytes},
            C{items}, C{connections}.
        """
        samples = list(self.samples)
        pairs = list(zip(samples, samples[1:]))[-count:] if count else []
        rates: dict[str, list[float]] = {kind: [] for kind in RATE_KINDS}
        ratios: list[Optional[float]] = []
        for before, after in pairs:
            seconds = max(after.time - before.time, 1e-9)
            for kind, names in RATE_KINDS.items():
                rates[kind].append(round(_delta(before, after, names) / seconds, 2))
            ratios.append(_ratio(before, after, *RATIO_KINDS["get"]))
        return {
            "t": [after.time for _, after in pairs],
            "rates": rates,
            "hitRatio": ratios,
            "bytes": [after.bytes for _, after in pairs],
            "items": [after.items for _, after in pairs],
            "connections": [after.connections for _, after in pairs],
        }

    def ratios(self) -> dict[str, dict[str, Optional[float]]]:
        """
        @return: by kind (L{RATIO_KINDS}), the hit ratio over each of
            L{RATIO_WINDOWS} (keyed C{"60s"}...), from the oldest sample in
            the window (or the first one) to now; L{None} without commands.
        """
        now = Sample(self.cache)
        result: dict[str, dict[str, Optional[float]]] = {kind: {} for kind in RATIO_KINDS}
        for window in RATIO_WINDOWS:
            start = self._since(now.time - window)
            for kind, (hits, misses) in RATIO_KINDS.items():
                result[kind]["%ds" % (window,)] = (
                    None if start is None else _ratio(start, now, hits, misses)
                )
        return result

    def _since(self, moment: float) -> Optional[Sample]:
        for sample in self.samples:
            if sample.time >= moment - 0.5:
                return sample
        return None

    def latency(self) -> list[dict[str, Any]]:
        """
        @return: by command, over the last L{LATENCY_WINDOW} seconds: C{count}
            (commands timed), C{mean} and the L{PERCENTILES} in milliseconds
            (each the upper bound of the histogram bucket it falls in;
            L{None} above the last bound); and C{total}, commands timed
            since the start.  Commands not seen in the window have no
            percentiles.
        """
        current = _histograms(self.cache)
        oldest = self._latencies[0][1] if self._latencies else {}
        rows = []
        for command in sorted(current):
            counts, seconds = current[command]
            before, beforeSeconds = oldest.get(command, ([0] * len(counts), 0.0))
            window = [now - then for now, then in zip(counts, before)]
            count = sum(window)
            row: dict[str, Any] = {"command": command, "count": count, "total": sum(counts)}
            if count:
                row["mean"] = round((seconds - beforeSeconds) / count * 1000, 4)
                row.update(percentiles(window))
            rows.append(row)
        return rows


def _delta(before: Sample, after: Sample, names: tuple[str, ...]) -> int:
    # stats reset zeroes the counters: then count what came after it.
    if any(after.counters[name] < before.counters[name] for name in names):
        return sum(after.counters[name] for name in names)
    return sum(after.counters[name] - before.counters[name] for name in names)


def _ratio(
    before: Sample, after: Sample, hits: tuple[str, ...], misses: tuple[str, ...]
) -> Optional[float]:
    if any(after.counters[name] < before.counters[name] for name in hits + misses):
        hit = sum(after.counters[name] for name in hits)
        miss = sum(after.counters[name] for name in misses)
    else:
        hit = _delta(before, after, hits)
        miss = _delta(before, after, misses)
    return None if not hit + miss else round(hit / (hit + miss), 4)


def percentiles(counts: list[int]) -> dict[str, Optional[float]]:
    """
    @param counts: observations per bucket of L{BUCKETS}, the last one above
        every bound.
    @return: each of L{PERCENTILES}, in milliseconds: the upper bound of the
        bucket it falls in, or L{None} when that is the last one.
    """
    total = sum(counts)
    result: dict[str, Optional[float]] = {}
    for name, fraction in PERCENTILES:
        target = fraction * total
        cumulative = 0
        for index, count in enumerate(counts):
            cumulative += count
            if count and cumulative >= target:
                break
        result[name] = round(BUCKETS[index] * 1000, 3) if index < len(BUCKETS) else None
    return result


class SizeWalk:
    """
    Count the items of each slab class, the size memcached would put them
    in (L{SLAB_SIZES}), one batch per step; a copy of the item references is
    taken at the first step.
    """

    def __init__(self, cache: Cache, done: Any) -> None:
        self._cache = cache
        self._done = done
        self._steps = self._walk()

    def __iter__(self) -> SizeWalk:
        return self

    def __next__(self) -> None:
        next(self._steps)

    def _walk(self) -> Iterator[None]:
        items = self._cache.store.allItems()
        yield None
        counts = [0] * len(SLAB_SIZES)
        sizes = [0] * len(SLAB_SIZES)
        last = len(SLAB_SIZES) - 1
        for start in range(0, len(items), SIZE_BATCH):
            for item in items[start : start + SIZE_BATCH]:
                index = min(bisect_left(SLAB_SIZES, item.size), last)
                counts[index] += 1
                sizes[index] += item.size
            yield None
        self._done(
            [
                {"class": index + 1, "chunk": SLAB_SIZES[index], "items": counts[index],
                 "bytes": sizes[index]}
                for index in range(len(SLAB_SIZES))
                if counts[index]
            ]
        )


def prefixes(cache: Cache) -> dict[str, Any]:
    """
    @return: C{enabled} (whether C{stats detail} is on) and C{top}, the
        busiest prefixes with their counts.
    """
    detail = cache.prefixStats
    return {
        "enabled": detail.enabled,
        "top": [
            {
                "prefix": prefix.decode("utf-8", "backslashreplace"),
                "get": counts[0],
                "hit": counts[1],
                "set": counts[2],
                "delete": counts[3],
            }
            for prefix, counts in detail.top(TOP_PREFIXES)
        ],
    }


def _plain(value: object) -> object:
    # stats values as JSON: numbers stay numbers, the rest is text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return str(value)


def overview(sampler: Sampler, history: int, valuesShown: bool) -> dict[str, Any]:
    """
    Everything the page shows but the key browser.

    @param history: how many seconds of history to include.
    @param valuesShown: whether the key browser shows values
        (C{--dashboard-values}).
    """
    cache = sampler.cache
    stats = {name: _plain(value) for name, value in generalStats(cache)}
    settings = {name: _plain(value) for name, value in settingsStats(cache)}
    return {
        "server": {"myproto": __version__, "version": stats["version"]},
        "stats": stats,
        "settings": settings,
        "history": sampler.history(history),
        "ratios": sampler.ratios(),
        "latency": sampler.latency(),
        "sizes": {"classes": sampler.sizes, "at": sampler.sizesAt or None},
        "prefixes": prefixes(cache),
        "values": valuesShown,
    }
