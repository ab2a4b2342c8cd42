"""
memcached's C{watch} command: a connection that sends C{watch [fetchers]
[mutations] [evictions] ...} gets C{OK}, then one line per event, in the
formats of memcached 1.6's C{logger.c}, and sends no more commands.

    ts=1700000000.123456 gid=7 type=item_get key=foo status=found clsid=1 cfd=12 size=3

Lines end in a bare LF, the key is URI-encoded, C{ts} is the wall clock in
seconds and microseconds (the microseconds unpadded, as memcached prints
them), and C{gid} numbers every event logged while anyone watches.

Fetches are reported where memcached reports them: at every lookup, which
includes the one a storage command makes before it stores; mutations when a
storage command (or C{ms}) has its outcome; evictions when the store evicts;
connevents when a client connects and when its connection closes, with
memcached's reason (C{normal}, C{error}, C{idle_timeout}, C{shutdown}).
No one watching costs one attribute check per lookup and per stored item
(L{myproto.store.MemoryStore.observer}, L{myproto.cache.Cache.watching}).

A watcher that does not read its lines does not make the server buffer
without bound: once its connection's buffer is full (the protocol adapter
L{pauses<Watcher.pause>} it), lines for it are dropped and counted
(C{log_watcher_skipped} in C{stats}), and the next line it gets is preceded
by C{skipped=N}, as in memcached.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote_from_bytes

from myproto.cache import Cache, Lines
from myproto.errors import ClientError, HandOver
from myproto.store import Item
from myproto.wire import classic
from myproto.wire.replies import NO_MEMORY, TOO_LARGE, WATCH, Outcome

# memcached's log event classes, by the names C{watch} takes.
FETCHERS = 1
MUTATIONS = 2
EVICTIONS = 4
_QUIET = 8  # classes memcached has and myproto never logs
CONNEVENTS = 16
EVENT_NAMES = dict.fromkeys(classic.WATCH_EVENTS, _QUIET)
EVENT_NAMES.update(
    {b"evictions": EVICTIONS, b"fetchers": FETCHERS, b"mutations": MUTATIONS, b"connevents": CONNEVENTS}
)

# memcached's limit on watchers at once.
WATCHER_LIMIT = 20

WATCH_OK = b"OK\r\n"
WATCHER_TOO_MANY = b"WATCHER_TOO_MANY log watcher limit reached"
PIPELINED = b"ERROR cannot pipeline other commands before watch"
WATCH_NOT_ALLOWED = b"watch commands not allowed"  # memcached -W

# The slab class memcached would report for a small item; myproto keeps one
# class for everything, as "stats items" and "stats slabs" say.
ITEM_CLASS = 1


def uriEncode(key: bytes) -> bytes:
    """
    memcached's C{uriencode}: every byte but ASCII letters, digits and
    C{-._~} becomes C{%XX}.
    """
    return quote_from_bytes(key, safe="").encode("ascii")


def eventMask(names: tuple[bytes, ...]) -> int:
    """
    @param names: the event classes a C{watch} line names (checked by the
        parser); none means fetchers, as in memcached.
    @return: their bits.
    """
    mask = 0
    for name in names:
        mask |= EVENT_NAMES[name]
    return mask or FETCHERS


def watch(request: classic.WatchRequest, cache: Cache) -> Lines:
    """
    C{watch}: hand the connection over to a L{Watcher}.

    @return: C{WATCHER_TOO_MANY} when memcached's limit is reached.
    @raise HandOver: otherwise.
    @raise ClientError: under memcached's C{-W}.
    """
    if not cache.settings.watchEnabled:
        raise ClientError(WATCH_NOT_ALLOWED)
    watchers = cache.watchers
    if not isinstance(watchers, Watchers):
        watchers = cache.watchers = Watchers(cache)
    if len(watchers) >= WATCHER_LIMIT:
        return [WATCHER_TOO_MANY]
    raise HandOver(Watcher(watchers, eventMask(request.events)))


class Watchers:
    """
    Everyone watching one cache, and memcached's logger counters.

    Made by the first C{watch}, as the cache's C{watchers}.  While anyone
    watches, this object is the store's
    L{observer<myproto.store.MemoryStore.observer>} and the cache's
    C{watching}; otherwise both are L{None}.

    @ivar written: events logged (C{log_worker_written}).
    @ivar sent: lines sent to watchers (C{log_watcher_sent}).
    @ivar skipped: lines dropped for watchers that were not reading
        (C{log_watcher_skipped}).
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._watchers: list[Watcher] = []
        self._mask = 0
        self._gid = 0
        self.written = 0
        self.sent = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._watchers)

    def add(self, watcher: Watcher) -> None:
        """
        Start sending events to a watcher.  As in memcached, it sees only
        events numbered after the one it takes itself.
        """
        self._gid += 1
        self._watchers.append(watcher)
        self._update()

    def remove(self, watcher: Watcher) -> None:
        """
        Stop sending events to a watcher (its connection has gone).
        """
        if watcher in self._watchers:
            self._watchers.remove(watcher)
            self._update()

    def _update(self) -> None:
        mask = 0
        for watcher in self._watchers:
            mask |= watcher.events
        self._mask = mask
        active = self if self._watchers else None
        self._cache.watching = active
        self._cache.store.observer = active

    def _emit(self, event: int, body: bytes) -> None:
        self._gid += 1
        self.written += 1
        now = self._cache.store.now()
        seconds = int(now)
        line = b"ts=%d.%d gid=%d %s\n" % (seconds, int((now - seconds) * 1e6), self._gid, body)
        for watcher in list(self._watchers):
            if watcher.events & event:
                watcher.deliver(line)

    def _clientNumber(self) -> int:
        connection = self._cache.currentConnection
        return -1 if connection is None else connection.connectionNumber()

    # IItemObserver

    def itemFetched(self, key: bytes, outcome: str, item: Item | None) -> None:
        if not self._mask & FETCHERS:
            return
        found = item is not None
        self._emit(
            FETCHERS,
            b"type=item_get key=%s status=%s clsid=%d cfd=%d size=%d"
            % (
                uriEncode(key),
                outcome.encode("ascii"),
                ITEM_CLASS if found else 0,
                self._clientNumber(),
                len(item.value) if item is not None else 0,
            ),
        )

    def itemEvicted(self, item: Item) -> None:
        if not self._mask & EVICTIONS:
            return
        now = self._cache.store.now()
        ttl = round(item.expires - now) if item.expires else -1
        self._emit(
            EVICTIONS,
            b"type=eviction key=%s fetch=%s ttl=%d la=%d clsid=%d size=%d"
            % (
                uriEncode(item.key),
                b"yes" if item.fetched else b"no",
                ttl,
                int(now - item.lastAccess),
                ITEM_CLASS,
                len(item.value),
            ),
        )

    def connectionOpened(self, address: str, port: int, transport: str, number: int) -> None:
        if self._mask & CONNEVENTS:
            self._emit(
                CONNEVENTS,
                b"type=conn_new rip=%s rport=%d transport=%s cfd=%d"
                % (address.encode("ascii"), port, transport.encode("ascii"), number),
            )

    def connectionClosed(
        self, address: str, port: int, transport: str, number: int, reason: str
    ) -> None:
        if self._mask & CONNEVENTS:
            self._emit(
                CONNEVENTS,
                b"type=conn_close rip=%s rport=%d transport=%s reason=%s cfd=%d"
                % (address.encode("ascii"), port, transport.encode("ascii"), reason.encode("ascii"), number),
            )

    def itemStored(self, key: bytes, outcome: Outcome, mode: bytes, ttl: int, size: int) -> None:
        if not self._mask & MUTATIONS:
            return
        self._emit(
            MUTATIONS,
            b"type=item_store key=%s status=%s cmd=%s ttl=%d clsid=%d cfd=%d size=%d"
            % (
                uriEncode(key),
                WATCH[outcome],
                mode,
                ttl % 2**32,
                0 if outcome is TOO_LARGE or outcome is NO_MEMORY else ITEM_CLASS,
                self._clientNumber(),
                size,
            ),
        )


class Watcher:
    """
    One watching connection's subscription: the events it asked for and the
    lines it missed.  The protocol adapter gives it the connection's
    C{write} and pauses it while the connection's buffer is full.

    @ivar events: the event classes it watches.
    """

    endless = True
    pipelineError = PIPELINED

    def __init__(self, watchers: Watchers, events: int) -> None:
        self.watchers = watchers
        self.events = events
        self._write: Callable[[bytes], object] | None = None
        self._full = False
        self._skipped = 0

    def start(self, write: Callable[[bytes], object]) -> None:
        """
        Take over the connection: say C{OK}, then stream events.

        @param write: sends bytes to the client.
        """
        self._write = write
        write(WATCH_OK)
        self.watchers.add(self)

    def close(self) -> None:
        """
        The connection has gone.
        """
        self._write = None
        self.watchers.remove(self)

    def deliver(self, line: bytes) -> None:
        """
        Send one line, or count it as skipped while the buffer is full.
        """
        if self._full or self._write is None:
            self._skipped += 1
            self.watchers.skipped += 1
            return
        if self._skipped:
            line = b"skipped=%d\n%s" % (self._skipped, line)
            self._skipped = 0
        self.watchers.sent += 1
        self._write(line)

    def pause(self) -> None:
        """
        The connection's buffer is full: drop lines until L{resume}.
        """
        self._full = True

    def resume(self) -> None:
        """
        The connection's buffer has drained.
        """
        self._full = False


def watchStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: memcached's logger lines of C{stats}.  No event is ever
        dropped before it reaches the watchers, so C{log_worker_dropped} is
        always 0.
    """
    watchers = cache.watchers
    if watchers is None:
        return [(name, 0) for name in _WATCH_STATS]
    counts = (0, watchers.written, watchers.skipped, watchers.sent, len(watchers))
    return list(zip(_WATCH_STATS, counts))


_WATCH_STATS = (
    "log_worker_dropped",
    "log_worker_written",
    "log_watcher_skipped",
    "log_watcher_sent",
    "log_watchers",
)
