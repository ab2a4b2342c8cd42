"""
The cache a server serves, read and written from inside the same process.

L{LocalClient} gives a Twisted program that runs a myproto server (see
L{myproto.embedded}) typed methods named after the protocol's commands.
Each builds the request a network client's command line would parse into and
hands it to L{myproto.commands}, the code that answers clients, so the
results, the limits and the C{stats} counters are the ones clients see; there
is just no socket, no parsing and no waiting.

Keys and values may be given as L{bytes} or as L{str} (encoded as UTF-8);
values come back as L{bytes}.  Expiry times are the protocol's: 0 for never,
up to 30 days as seconds from now, larger as a unix time.

Call it from the reactor thread only, like everything that touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from myproto import commands, wire
from myproto.commands import Cache

Data = Union[bytes, str]

_UINT32 = 2**32
_UINT64 = 2**64
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class CachedValue:
    """
    An item as C{gets} shows it.

    @ivar value: the data.
    @ivar flags: the client's 32-bit flags.
    @ivar cas: the CAS unique to give to L{LocalClient.cas}.
    """

    value: bytes
    flags: int
    cas: int


def encodeKey(key: Data) -> bytes:
    """
    Check a key as memcached's text protocol requires it.

    @param key: the key; a L{str} is encoded as UTF-8.

    @return: the key as bytes.

    @raise ValueError: if it is empty, longer than 250 bytes, or contains
        whitespace or control characters (a client could not send it).
    """
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw or len(raw) > wire.KEY_MAX_LENGTH:
        raise ValueError("A key is 1 to {} bytes, not {}".format(wire.KEY_MAX_LENGTH, len(raw)))
    if any(byte <= 0x20 or byte == 0x7F for byte in raw):
        raise ValueError("A key cannot contain whitespace or control characters: {!r}".format(raw))
    return raw


def _encodeValue(value: Data) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _checkRange(name: str, number: int, low: int, high: int) -> int:
    if not low <= number <= high:
        raise ValueError("{} must be from {} to {}, not {}".format(name, low, high, number))
    return number


class LocalClient:
    """
    Typed access to the cache a server serves, with the same meanings as its
    commands for network clients.

    Errors are the ones a client would get, as exceptions from
    L{myproto.errors}: L{ServerError} for an item too large for the cache
    (C{SERVER_ERROR object too large for cache}) and L{ClientError} for
    C{incr} on a value that is not a number.  Arguments no client could send
    (a key with a space in it, negative flags) raise L{ValueError}.
    """

    def __init__(self, cache: Cache) -> None:
        """
        @param cache: the cache the server's connections act on
            (C{CacheServerFactory.cache}).
        """
        self._cache = cache

    # Retrieval

    def get(self, key: Data) -> bytes | None:
        """
        C{get}: a live item's value.

        @return: the value, or L{None} when there is no live item.
        """
        found = self.getMany([key])
        return next(iter(found.values()), None)

    def getMany(self, keys: Iterable[Data]) -> dict[bytes, bytes]:
        """
        C{get} with several keys.

        @return: the value of each key that has a live item.
        """
        return {key: item.value for key, item in self._retrieve(keys, withCas=False).items()}

    def gets(self, key: Data) -> CachedValue | None:
        """
        C{gets}: a live item with its flags and CAS unique.

        @return: the item, or L{None} when there is no live item.
        """
        return self._retrieve([key], withCas=True).get(encodeKey(key))

    def _retrieve(self, keys: Iterable[Data], withCas: bool) -> dict[bytes, CachedValue]:
        request = wire.RetrievalRequest(
            keys=tuple(encodeKey(key) for key in keys), withCas=withCas, touchExptime=None
        )
        if not request.keys:
            return {}
        lines = commands.execute(request, self._cache)
        found: dict[bytes, CachedValue] = {}
        # VALUE <key> <flags> <bytes> [<cas>], then the data, in pairs; END.
        for header, value in zip(lines[0:-1:2], lines[1:-1:2]):
            fields = header.split(b" ")
            cas = int(fields[4]) if withCas else 0
            found[fields[1]] = CachedValue(value, int(fields[2]), cas)
        return found

    # Storage

    def set(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{set}: store the item, replacing any other.

        @return: L{True}.
        @raise myproto.errors.ServerError: if the item is larger than the
            item size limit; as in memcached, the old item is then removed.
        """
        return self._store(b"set", key, value, expire, flags) == wire.STORED

    def add(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{add}: store the item only if the key has no live item.

        @return: whether it was stored.
        """
        return self._store(b"add", key, value, expire, flags) == wire.STORED

    def replace(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{replace}: store the item only if the key has a live item.

        @return: whether it was stored.
        """
        return self._store(b"replace", key, value, expire, flags) == wire.STORED

    def append(self, key: Data, value: Data) -> bool:
        """
        C{append}: add data after a live item's value, keeping its flags
        and expiry time.

        @return: whether there was an item to append to (and the result fit).
        """
        return self._store(b"append", key, value, 0, 0) == wire.STORED

    def prepend(self, key: Data, value: Data) -> bool:
        """
        C{prepend}: add data before a live item's value, keeping its flags
        and expiry time.

        @return: whether there was an item to prepend to (and the result fit).
        """
        return self._store(b"prepend", key, value, 0, 0) == wire.STORED

    def cas(self, key: Data, value: Data, cas: int, expire: int = 0, flags: int = 0) -> bool | None:
        """
        C{cas}: store the item only if it has not changed since L{gets}
        returned C{cas}.

        @return: L{True} if stored, L{False} if the item has changed since
            (C{EXISTS}), L{None} if there is no live item (C{NOT_FOUND}).
        """
        reply = self._store(b"cas", key, value, expire, flags, _checkRange("cas", cas, 0, _UINT64 - 1))
        if reply == wire.NOT_FOUND:
            return None
        return reply == wire.STORED

    def _store(
        self, verb: bytes, key: Data, value: Data, expire: int, flags: int, cas: int = 0
    ) -> bytes:
        data = _encodeValue(value)
        request = wire.StorageRequest(
            verb=verb,
            key=encodeKey(key),
            flags=_checkRange("flags", flags, 0, _UINT32 - 1),
            exptime=_checkRange("expire", expire, _INT32_MIN, _INT32_MAX),
            size=len(data),
            cas=cas,
            noreply=False,
        )
        commands.admit(request, self._cache)
        return commands.complete(request, data, self._cache)[0]

    # Other item commands

    def delete(self, key: Data) -> bool:
        """
        C{delete}: remove a live item.

        @return: whether there was one.
        """
        request = wire.DeleteRequest(key=encodeKey(key), noreply=False)
        reply = commands.execute(request, self._cache)
        return reply[0] == wire.DELETED

    def incr(self, key: Data, delta: int = 1) -> int | None:
        """
        C{incr}: add to a decimal counter, wrapping at 2**64.

        @return: the new value, or L{None} when there is no live item.
        @raise myproto.errors.ClientError: if the value is not a decimal
            number.
        """
        return self._arithmetic(key, delta, True)

    def decr(self, key: Data, delta: int = 1) -> int | None:
        """
        C{decr}: subtract from a decimal counter, stopping at 0.

        @return: the new value, or L{None} when there is no live item.
        @raise myproto.errors.ClientError: if the value is not a decimal
            number.
        """
        return self._arithmetic(key, delta, False)

    def _arithmetic(self, key: Data, delta: int, increment: bool) -> int | None:
        request = wire.ArithmeticRequest(
            key=encodeKey(key),
            delta=_checkRange("delta", delta, 0, _UINT64 - 1),
            increment=increment,
            noreply=False,
        )
        reply = commands.execute(request, self._cache)[0]
        if reply == wire.NOT_FOUND:
            return None
        return int(reply)

    def touch(self, key: Data, expire: int) -> bool:
        """
        C{touch}: give a live item a new expiry time.

        @return: whether there was one.
        """
        request = wire.TouchRequest(
            key=encodeKey(key),
            exptime=_checkRange("expire", expire, _INT32_MIN, _INT32_MAX),
            noreply=False,
        )
        return commands.execute(request, self._cache)[0] == wire.TOUCHED

    def flushAll(self, delay: int = 0) -> None:
        """
        C{flush_all}: invalidate every item, now or after C{delay} seconds.
        """
        request = wire.FlushRequest(
            exptime=_checkRange("delay", delay, _INT32_MIN, _INT32_MAX), noreply=False
        )
        commands.execute(request, self._cache)

    def stats(self) -> dict[str, str]:
        """
        C{stats}: the general statistics, as a client sees them.

        @return: each statistic's value, as text, by name.
        """
        lines = commands.execute(wire.StatsRequest(arguments=()), self._cache)
        pairs = (line.split(b" ", 2)[1:] for line in lines if line.startswith(wire.STAT))
        return {name.decode("ascii"): value.decode("ascii") for name, value in pairs}
