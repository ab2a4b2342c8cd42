"""
memcached's C{lru_crawler} command, above all C{lru_crawler metadump}: one
line per live item, then C{END}, in memcached 1.6's format, so that key-dump
tools work unchanged.

    key=user%3A42 exp=-1 la=1700000000 cas=7 fetch=no cls=1 size=66

Keys are URI-encoded; C{exp} is the expiry as a unix time (-1 for never),
C{la} the last access as a unix time, C{size} the bytes the item is charged
for.  myproto keeps a single LRU, reported as slab class 1 (as in C{stats
items}), so C{metadump all}, C{metadump hash} and a class list that includes
1 all list every item, and a list without 1 lists none.

The dump streams: the connection is handed over to a L{Metadump}, an
iterator of batches of lines, which the protocol adapter writes one batch per
reactor turn while the transport is not full, so a large cache neither
blocks the server nor is buffered whole.  As in memcached, one
crawl runs at a time (C{BUSY} otherwise) and the connection reads no
commands until the dump ends.

The other subcommands: C{crawl} reclaims expired items at once (all classes
or a list; C{tocrawl} bounds how many it looks at), C{tocrawl} and C{sleep}
are checked and remembered (C{sleep} has no effect: the dump's pace is set
by the client), C{enable} and C{disable} switch the crawler as in memcached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from myproto.cache import Cache, Lines
from myproto.commands.watch import ITEM_CLASS, uriEncode
from myproto.errors import ClientError, HandOver, UnknownCommand
from myproto.wire import classic
from myproto.wire.numbers import strtoul

END = b"END\r\n"
CRAWLER_DISABLED = b"lru crawler disabled"
BUSY = b"BUSY currently processing crawler request"
BAD_CLASS = b"BADCLASS invalid class id"
NOT_STARTED = b"NOTSTARTED no items to crawl"
UNKNOWN_ERROR = b"ERROR an unknown error happened"
START_FAILED = b"ERROR failed to start lru crawler thread"
SLEEP_TOO_LONG = b"sleep must be one second or less"
PIPELINED = b"ERROR cannot pipeline other commands before metadump"
DUMP_NOT_ALLOWED = b"ERROR metadump not allowed"  # memcached -X

# memcached's slab class ids: 1 up to, not including, this.
MAX_CLASSES = 64

# The longest pause between items memcached accepts (microseconds).
MAX_SLEEP = 1_000_000

# Items written per reactor turn by a dump.
DUMP_BATCH = 1000

# How many expired items one "crawl" may reclaim when tocrawl is 0 (no
# limit): everything.
_UNBOUNDED = 2**62


def _classes(spec: bytes) -> bool | None:
    """
    Read the classes a crawl is for, as memcached's C{lru_crawler_crawl}
    does.

    @param spec: C{all}, C{hash}, or class ids separated by commas.
    @return: whether myproto's one class is among them, or L{None} when no
        class is named at all.
    @raise _BadClass: for an id that is not a class (C{BADCLASS}).
    """
    if spec == b"all" or spec == b"hash":
        return True
    named = False
    includesOurs = False
    for token in spec.split(b","):
        if not token:
            continue
        number = strtoul(token)
        if number is None or not 1 <= number < MAX_CLASSES:
            raise _BadClass()
        named = True
        includesOurs = includesOurs or number == ITEM_CLASS
    return includesOurs if named else None


class _BadClass(Exception):
    """
    A crawl named a class id memcached does not have.
    """


def lruCrawler(request: classic.LruCrawlerRequest, cache: Cache) -> Lines:
    """
    C{lru_crawler <subcommand> ...}, answered as memcached 1.6.18 answers.

    @raise HandOver: for a C{metadump} that starts.
    """
    arguments = request.arguments
    crawler = cache.crawler
    if len(arguments) == 2:
        subcommand, argument = arguments
        if subcommand == b"crawl" or subcommand == b"metadump":
            if not crawler.enabled:
                raise ClientError(CRAWLER_DISABLED)
            if subcommand == b"metadump" and not cache.settings.dumpEnabled:
                return [DUMP_NOT_ALLOWED]
            if argument == b"hash" and subcommand == b"crawl":
                # memcached walks the hash table for dumps only.
                return [UNKNOWN_ERROR]
            try:
                wanted = _classes(argument)
            except _BadClass:
                return [BAD_CLASS]
            if crawler.running:
                return [BUSY]
            if wanted is None:
                return [NOT_STARTED]
            if subcommand == b"crawl":
                crawler.starts += 1
                if wanted:
                    cache.store.sweepExpired(crawler.tocrawl or _UNBOUNDED)
                return [classic.OK]
            raise HandOver(Metadump(cache, wanted))
        if subcommand == b"tocrawl" or subcommand == b"sleep":
            number = strtoul(argument)
            if number is None:
                raise ClientError(classic.BAD_FORMAT)
            if subcommand == b"tocrawl":
                crawler.tocrawl = number
            elif number > MAX_SLEEP:
                raise ClientError(SLEEP_TOO_LONG)
            else:
                crawler.sleep = number
            return [classic.OK]
    elif len(arguments) == 1:
        if arguments[0] == b"enable":
            if crawler.enabled:
                return [START_FAILED]
            crawler.enabled = True
            return [classic.OK]
        if arguments[0] == b"disable":
            crawler.enabled = False
            return [classic.OK]
    raise UnknownCommand()


def metadumpLine(key: bytes, item: Any) -> bytes:
    """
    One item as memcached's C{crawler_metadump_eval} writes it.
    """
    return b"key=%s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\n" % (
        uriEncode(key),
        int(item.expires) if item.expires else -1,
        int(item.lastAccess),
        item.cas,
        b"yes" if item.fetched else b"no",
        ITEM_CLASS,
        item.size,
    )


class Metadump:
    """
    A C{metadump} for one connection: an iterator of batches of lines, the
    last ending in C{END}.

    The keys are copied when it starts; each is then looked up without side
    effects, so items deleted or expired meanwhile are left out and the
    dump does not count as a use of anything.
    """

    endless = False
    pipelineError = PIPELINED

    def __init__(self, cache: Cache, wanted: bool) -> None:
        self._cache = cache
        self._wanted = wanted
        self._keys: Iterator[bytes] = iter(())
        self._finished = False

    def start(self) -> None:
        """
        The connection is handed over: take the keys, and count the crawl
        as running.
        """
        crawler = self._cache.crawler
        crawler.running = True
        crawler.starts += 1
        self._keys = iter(self._cache.store.keys() if self._wanted else [])

    def __iter__(self) -> Metadump:
        return self

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        find = self._cache.store.find
        lines = []
        for key in self._keys:
            item = find(key)
            if item is not None:
                lines.append(metadumpLine(key, item))
                if len(lines) >= DUMP_BATCH:
                    return b"".join(lines)
        lines.append(END)
        self.close()
        return b"".join(lines)

    def close(self) -> None:
        """
        The dump is written, or its connection has gone.
        """
        self._finished = True
        self._cache.crawler.running = False


def crawlerStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: the crawler lines of C{stats}, which memcached shows only while
        the crawler is enabled.
    """
    crawler = cache.crawler
    if not crawler.enabled:
        return []
    return [
        ("lru_crawler_running", int(crawler.running)),
        ("lru_crawler_starts", crawler.starts),
    ]
