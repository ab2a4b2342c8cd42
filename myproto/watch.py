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
storage command (or C{ms}) has its outcome; evictions when the store evicts.
No one watching costs one attribute check per lookup and per stored item
(L{myproto.store.MemoryStore.observer}, L{myproto.commands.Cache.watching}).

A watcher that does not read its lines does not make the server buffer
without bound: once its transport's buffer is full (the transport pauses it
as a producer), lines for it are dropped and counted (C{log_watcher_skipped}
in C{stats}), and the next line it gets is preceded by C{skipped=N}, as in
memcached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from myproto import meta, wire
from myproto.conns import connectionNumber
from myproto.errors import HandOver, ServerError
from myproto.store import Item

if TYPE_CHECKING:
    from myproto.commands import Cache, Lines

# memcached's log event classes, by the names C{watch} takes.
FETCHERS = 1
MUTATIONS = 2
EVICTIONS = 4
_QUIET = 8  # classes memcached has and myproto never logs
EVENT_NAMES = {
    b"rawcmds": _QUIET,
    b"evictions": EVICTIONS,
    b"fetchers": FETCHERS,
    b"mutations": MUTATIONS,
    b"sysevents": _QUIET,
    b"connevents": _QUIET,
    b"proxyreqs": _QUIET,
    b"proxyevents": _QUIET,
    b"proxyuser": _QUIET,
}

# memcached's limit on watchers at once.
WATCHER_LIMIT = 20

WATCH_OK = b"OK\r\n"
WATCHER_TOO_MANY = b"WATCHER_TOO_MANY log watcher limit reached"
PIPELINED = b"ERROR cannot pipeline other commands before watch"

# The slab class memcached would report for a small item; myproto keeps one
# class for everything, as "stats items" and "stats slabs" say.
ITEM_CLASS = 1

# memcached's status words for an item_store line, by reply.
_STORE_STATUS = {
    wire.STORED: b"stored",
    wire.NOT_STORED: b"not_stored",
    wire.EXISTS: b"exists",
    wire.NOT_FOUND: b"not_found",
    meta.HEADER: b"stored",
    meta.NOT_STORED: b"not_stored",
    meta.EXISTS: b"exists",
    meta.NOT_FOUND: b"not_found",
}


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


def watch(request: wire.WatchRequest, cache: Cache) -> Lines:
    """
    C{watch}: hand the connection over to a L{Watcher}.

    @return: C{WATCHER_TOO_MANY} when memcached's limit is reached.
    @raise HandOver: otherwise.
    """
    if len(cache.watchers) >= WATCHER_LIMIT:
        return [WATCHER_TOO_MANY]
    raise HandOver(Watcher(cache.watchers, eventMask(request.events)))


class Watchers:
    """
    Everyone watching one cache, and memcached's logger counters.

    While anyone watches, this object is the store's
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
        return connectionNumber(self._cache.currentConnection)

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

    # Mutations, seen from the storage commands' dispatch.

    def _itemStored(self, key: bytes, status: bytes, verb: bytes, ttl: int, size: int) -> None:
        self._emit(
            MUTATIONS,
            b"type=item_store key=%s status=%s cmd=%s ttl=%d clsid=%d cfd=%d size=%d"
            % (
                uriEncode(key),
                status,
                verb,
                ttl % 2**32,
                ITEM_CLASS if status != b"too_large" and status != b"no_memory" else 0,
                self._clientNumber(),
                size,
            ),
        )

    def admitting(
        self, admitter: Callable[[Any, Cache], Lines], request: wire.DataRequest, cache: Cache
    ) -> Lines:
        """
        Run an admission check, logging C{too_large} as memcached does
        (before the old item is dropped, for a classic storage command).
        """
        described = _describe(request)
        if described is None or not self._mask & MUTATIONS:
            return admitter(request, cache)
        key, verb, _ = described
        if isinstance(request, wire.StorageRequest):
            if not cache.store.fits(key, request.size, request.flags):
                self._itemStored(key, b"too_large", verb, 0, 0)
            return admitter(request, cache)
        try:
            return admitter(request, cache)
        except ServerError as error:
            if error.message == wire.TOO_LARGE:
                self._itemStored(key, b"too_large", verb, 0, 0)
            raise

    def completing(
        self,
        completer: Callable[[Any, bytes, Cache], Lines],
        request: wire.DataRequest,
        value: bytes,
        cache: Cache,
    ) -> Lines:
        """
        Run a storage command and log its outcome (C{item_store}).
        """
        described = _describe(request)
        if described is None or not self._mask & MUTATIONS:
            return completer(request, value, cache)
        key, verb, exptime = described
        try:
            lines = completer(request, value, cache)
        except ServerError as error:
            if error.message == wire.OUT_OF_MEMORY:
                self._itemStored(key, b"no_memory", verb, 0, 0)
            raise
        status = _STORE_STATUS.get(lines[0].split(b" ", 1)[0], b"stored") if lines else b"stored"
        now = cache.store.now()
        item = cache.store.find(key) if status == b"stored" else None
        if item is not None:
            ttl = round(item.expires - now) if item.expires else 0
            size = len(item.value)
        else:
            expires = cache.expiry(exptime) if exptime else 0.0
            ttl = round(expires - now) if expires else 0
            size = len(value)
        self._itemStored(key, status, verb, ttl, size)
        return lines


def _describe(request: object) -> tuple[bytes, bytes, int] | None:
    """
    @return: the key, the storage verb memcached logs, and the expiration
        time asked for, of a storage request; L{None} for anything else.
    """
    if isinstance(request, wire.StorageRequest):
        return request.key, request.verb, request.exptime
    if isinstance(request, meta.MetaSetRequest):
        flags = request.flags
        verb = meta.SET_MODES.get(flags.mode, b"set")
        if flags.compareCas is not None and verb in (b"set", b"replace"):
            verb = b"cas"
        return flags.key, verb, flags.ttl or 0
    return None


@implementer(IPushProducer)
class Watcher:
    """
    One watching connection: its transport, the events it asked for and the
    lines it missed.  It is the transport's producer, so that a full buffer
    pauses it.

    @ivar events: the event classes it watches.
    """

    endless = True
    pipelineError = PIPELINED

    def __init__(self, watchers: Watchers, events: int) -> None:
        self.watchers = watchers
        self.events = events
        self._transport: Any = None
        self._full = False
        self._skipped = 0

    def start(self, transport: Any, clock: Any, done: Callable[[], None]) -> None:
        """
        Take over the connection: say C{OK}, then stream events.
        """
        self._transport = transport
        transport.write(WATCH_OK)
        transport.registerProducer(self, True)
        self.watchers.add(self)

    def stop(self) -> None:
        """
        The connection has gone.
        """
        self.watchers.remove(self)

    def deliver(self, line: bytes) -> None:
        """
        Send one line, or count it as skipped while the buffer is full.
        """
        if self._full:
            self._skipped += 1
            self.watchers.skipped += 1
            return
        if self._skipped:
            line = b"skipped=%d\n%s" % (self._skipped, line)
            self._skipped = 0
        self.watchers.sent += 1
        self._transport.write(line)

    def pauseProducing(self) -> None:
        self._full = True

    def resumeProducing(self) -> None:
        self._full = False

    def stopProducing(self) -> None:
        self.stop()


def watchStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: memcached's logger lines of C{stats}.  No event is ever
        dropped before it reaches the watchers, so C{log_worker_dropped} is
        always 0.
    """
    watchers = cache.watchers
    return [
        ("log_worker_dropped", 0),
        ("log_worker_written", watchers.written),
        ("log_watcher_skipped", watchers.skipped),
        ("log_watcher_sent", watchers.sent),
        ("log_watchers", len(watchers)),
    ]
