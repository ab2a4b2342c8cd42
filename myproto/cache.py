"""
The context every command acts on: the store, the counters, the settings,
the clock, and the hooks through which commands reach what lies above them.

The hooks (connections, C{watch} events, TLS certificates, timings) are
declared here as L{typing.Protocol}s and filled in by whoever builds the
server (L{myproto.protocol.CacheServerFactory}, L{myproto.metrics}), so this
module and the commands import nothing from the layers above them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from myproto.config import ServerSettings
from myproto.stats import PrefixStats, ServerStats
from myproto.store import IItemObserver, Item, MemoryStore, slabSizes
from myproto.wire.replies import Outcome

# Clients gate features on the server's version, so myproto reports the
# memcached release whose protocol it speaks.
PROTOCOL_VERSION = b"1.6.18"

# memcached's longest relative expiry; larger values are absolute unix times.
MAX_RELATIVE_EXPTIME = 60 * 60 * 24 * 30

# memcached keeps time as whole seconds since a moment it puts this long
# before it started (its ITEM_UPDATE_INTERVAL plus two), so that no item time
# is ever zero.
_SERVER_EPOCH_LEAD = 62

# Reply lines, as a list of byte strings without their CRLF.
Lines = list[bytes]


class ClientConnection(Protocol):
    """
    What commands may learn of a client connection (C{stats conns}, the
    C{cfd} of C{watch} lines).
    """

    def connectionNumber(self) -> int:
        """
        @return: the number memcached shows for it: its file descriptor.
        """

    def connectionReport(self, now: float, current: bool) -> list[tuple[str, object]]:
        """
        @param now: the clock's time.
        @param current: whether its input is being handled right now.
        @return: its C{stats conns} lines, without the number prefix.
        """


class ItemEvents(IItemObserver, Protocol):
    """
    Told about every lookup, eviction and storage outcome while someone
    watches (memcached's C{watch}); see L{Cache.watching}.
    """

    def itemStored(self, key: bytes, outcome: Outcome, mode: bytes, ttl: int, size: int) -> None:
        """
        A storage command had its outcome (an C{item_store} log line).

        @param mode: the storage verb memcached logs (C{set}, C{cas}...).
        @param ttl: seconds the item was given to live, 0 for never.
        @param size: the value's length.
        """

    def connectionOpened(self, address: str, port: int, transport: str, number: int) -> None:
        """
        A client connected (a C{conn_new} log line).

        @param address: its IP address, or C{unix}.
        @param port: its port (0 on a Unix socket).
        @param transport: C{tcp} or C{local}.
        @param number: its connection number (L{ClientConnection}).
        """

    def connectionClosed(
        self, address: str, port: int, transport: str, number: int, reason: str
    ) -> None:
        """
        A client's connection closed (a C{conn_close} log line).

        @param reason: memcached's: C{normal} (the client closed or said
            C{quit}), C{error}, C{idle_timeout} or C{shutdown}.
        """


class WatchHub(Protocol):
    """
    The watchers of one cache and memcached's logger counters.
    """

    written: int
    sent: int
    skipped: int

    def __len__(self) -> int:
        """
        @return: how many connections watch.
        """


class Certificates(Protocol):
    """
    The TLS endpoints' certificate files, when the server has C{mtls:}
    endpoints.
    """

    def reload(self) -> Optional[str]:
        """
        Load the files again.

        @return: L{None}, or memcached's error line.
        """

    def stats(self) -> list[tuple[str, object]]:
        """
        @return: the TLS lines of C{stats}.
        """


class CommandTimer(Protocol):
    """
    Records how long each command takes (L{myproto.metrics}).
    """

    def time(self, handler: Callable[[Any, Cache], Lines], request: Any, cache: Cache) -> Lines:
        """
        Run a command that needs no data block, timing it.
        """

    def timeCompletion(
        self,
        completer: Callable[[Any, bytes, Cache], Lines],
        request: Any,
        value: bytes,
        cache: Cache,
    ) -> Lines:
        """
        Run a command whose data block has arrived, timing it.
        """


class CrawlerState:
    """
    The C{lru_crawler} settings and state of one cache.

    @ivar enabled: C{lru_crawler enable|disable}.
    @ivar sleep: C{lru_crawler sleep}, in microseconds (remembered only).
    @ivar tocrawl: C{lru_crawler tocrawl}: most items one crawl examines
        (0: no limit).
    @ivar running: whether a dump is streaming.
    @ivar starts: crawls and dumps started (C{lru_crawler_starts}).
    """

    # memcached's default pause between items, in microseconds.
    DEFAULT_SLEEP = 100

    def __init__(self) -> None:
        self.enabled = True
        self.sleep = self.DEFAULT_SLEEP
        self.tocrawl = 0
        self.running = False
        self.starts = 0


@dataclass
class Tuning:
    """
    What memcached's tuning commands set (C{lru}, C{extstore}, C{slabs
    automove ratio}), at memcached's defaults: remembered for C{stats
    settings}, as myproto has no segmented LRU, extstore or slab pages.
    """

    hotLruPct: int = 20
    warmLruPct: int = 40
    hotMaxFactor: float = 0.2
    warmMaxFactor: float = 2.0
    lruSegmented: bool = True
    tempLru: bool = False
    temporaryTtl: int = 61
    slabAutomoveRatio: float = 0.8
    extItemSize: int = 512
    extItemAge: int = 2**32 - 1
    extLowTtl: int = 0
    extRecacheRate: int = 2000
    extCompactUnder: int = 0
    extDropUnder: int = 0
    extMaxSleep: int = 1_000_000
    extMaxFrag: float = 0.8
    extDropUnread: bool = False


class Cache:
    """
    Everything commands act on: the store, the counters and the settings.

    @ivar store: the items.
    @ivar stats: the server-wide counters.
    @ivar prefixStats: the C{stats detail} counters.
    @ivar settings: the server's settings.
    @ivar verbosity: the current verbosity, which C{verbosity} changes.
    @ivar slabAutomove: the level C{slabs automove} last set (remembered
        only: there are no slabs to move).
    @ivar startedAt: clock seconds when the server started.
    @ivar oldestLive: memcached's time (L{serverTime}) before which items
        are invalid, as the last C{flush_all} set it (C{stats settings}
        C{oldest}); 0 before any.
    @ivar sizesFrom: while C{stats sizes_enable} is in force, the first CAS
        unique C{stats sizes} counts, else L{None}.
    @ivar replyWindow: names the replies a connection has made but memcached
        would not have written yet (see L{newReplyWindow}).
    @ivar connections: the open client connections (C{stats conns}); the
        protocol factory shares this set.
    @ivar listeners: the listening ports, which C{stats conns} lists too
        (as memcached does), told by the service that listens.
    @ivar currentConnection: the connection whose input is being handled.
    @ivar watchers: everyone watching, once someone has (L{myproto.commands.watch}).
    @ivar watching: told of item events while anyone watches, else L{None}.
    @ivar crawler: the C{lru_crawler} settings and state.
    @ivar tuning: what the tuning commands set.
    @ivar certificates: set by the service wiring when the server has
        C{mtls:} endpoints, else L{None}.
    @ivar slabSizes: the chunk size of each slab class memcached would
        make with the C{-f} and C{-n} settings (L{myproto.store.slabSizes}).
    @ivar timings: per-command durations, kept while a metrics endpoint is
        configured (L{myproto.metrics}), else L{None}.
    """

    def __init__(self, store: MemoryStore, settings: ServerSettings) -> None:
        self.store = store
        self.stats = ServerStats()
        self.prefixStats = PrefixStats(ord(settings.detailDelimiter[:1] or ":"))
        self.settings = settings
        self.verbosity = settings.verbosity
        self.slabAutomove = 1
        # The store's start: its coarse last-access clock ticks on the same
        # whole seconds as the times reported to clients.
        self.startedAt = store.startedAt
        self.oldestLive = 0
        self.sizesFrom: int | None = None
        if settings.trackSizes:
            # As memcached's -o track_sizes, which takes a CAS unique too.
            self.sizesFrom = store.nextCas() if store.useCas else 0
        self.replyWindow = 1
        self.connections: set[Any] = set()
        self.listeners: set[ClientConnection] = set()
        self.currentConnection: ClientConnection | None = None
        self.watchers: WatchHub | None = None
        self.watching: ItemEvents | None = None
        self.crawler = CrawlerState()
        self.tuning = Tuning(lruSegmented=settings.lruMaintainer)
        self.crawler.enabled = settings.lruCrawler
        self.crawler.sleep = settings.crawlerSleep
        self.crawler.tocrawl = settings.crawlerToCrawl
        self.certificates: Certificates | None = None
        self.timings: CommandTimer | None = None
        # The slab classes -f and -n make, as stats slabs and me report them.
        self.slabSizes = slabSizes(settings.growthFactor, settings.chunkSizeMin)

    def newReplyWindow(self) -> None:
        """
        Note that memcached would now have written the replies made so far.

        Until it does, each reply showing an item holds a reference to it,
        and C{incr}/C{decr}/C{ma} will not change a referenced item in place:
        they store a new item instead.  C{mg} marks what it shows with the
        current window, and arithmetic compares; C{get} and C{mn} make
        memcached write its replies, as does the end of a read or every
        twentieth command (see L{myproto.connection}).
        """
        self.replyWindow += 1

    def expiry(self, exptime: int) -> float:
        """
        Turn a protocol expiration time into absolute clock seconds.

        @param exptime: 0 for never, up to 30 days as seconds from now,
            larger as a unix time; negative means already expired.
        @return: absolute clock seconds, or 0.0 for never.
        """
        if exptime == 0:
            return 0.0
        if exptime < 0:
            # Any moment in the past will do; zero would mean "never".
            return 1.0
        if exptime > MAX_RELATIVE_EXPTIME:
            return float(exptime)
        return self.store.now() + exptime

    # Time as memcached counts it, for the meta commands' reports.

    def serverTime(self, moment: float) -> int:
        """
        @return: memcached's whole-second time for a clock time.
        """
        return math.floor(moment - self.startedAt + _SERVER_EPOCH_LEAD)

    def expiryTime(self, expires: float) -> int:
        """
        @return: memcached's time of an expiry: 0 for never, and at least 1
            (memcached's "already expired") for moments before it started.
        """
        if not expires:
            return 0
        return max(1, self.serverTime(expires))

    def remainingTtl(self, item: Item) -> bytes:
        """
        The TTL that C{t} reports: -1 for never, else the seconds left, as
        an unsigned 32-bit number (so an item this very request expired
        shows as a huge one, as in memcached).
        """
        if not item.expires:
            return b"-1"
        remaining = self.expiryTime(item.expires) - self.serverTime(self.store.now())
        return b"%d" % (remaining & 0xFFFFFFFF,)

    def idleTime(self, item: Item) -> int:
        """
        @return: seconds since the item was last used, as C{l} reports it.
        """
        now = self.serverTime(self.store.now())
        return (now - self.serverTime(item.lastAccess)) & 0xFFFFFFFF
