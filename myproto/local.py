"""
The cache a server serves, read and written from inside the same process.

L{LocalClient} gives a Twisted program that runs a myproto server (see
L{myproto.embedded}) typed methods named after the protocol's commands.
Each calls the same function of L{myproto.commands} that carries out the
command for network clients and reads the L{Outcome} it returns, so the
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

from myproto.cache import Cache
from myproto.commands import admin, arithmetic, items, retrieval, storage
from myproto.wire.classic import KEY_MAX_LENGTH
from myproto.wire.replies import NOT_FOUND, STORED, Outcome

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
    if not raw or len(raw) > KEY_MAX_LENGTH:
        raise ValueError("A key is 1 to {} bytes, not {}".format(KEY_MAX_LENGTH, len(raw)))
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
        encoded = tuple(encodeKey(key) for key in keys)
        if not encoded:
            return {}
        return {
            item.key: CachedValue(item.value, item.flags, item.cas if withCas else 0)
            for item in retrieval.retrieveItems(self._cache, encoded)
        }

    # Storage

    def set(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{set}: store the item, replacing any other.

        @return: L{True}.
        @raise myproto.errors.ServerError: if the item is larger than the
            item size limit; as in memcached, the old item is then removed.
        """
        return self._store(storage.SET, key, value, expire, flags) is STORED

    def add(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{add}: store the item only if the key has no live item.

        @return: whether it was stored.
        """
        return self._store(storage.ADD, key, value, expire, flags) is STORED

    def replace(self, key: Data, value: Data, expire: int = 0, flags: int = 0) -> bool:
        """
        C{replace}: store the item only if the key has a live item.

        @return: whether it was stored.
        """
        return self._store(storage.REPLACE, key, value, expire, flags) is STORED

    def append(self, key: Data, value: Data) -> bool:
        """
        C{append}: add data after a live item's value, keeping its flags
        and expiry time.

        @return: whether there was an item to append to (and the result fit).
        """
        return self._store(storage.APPEND, key, value, 0, 0) is STORED

    def prepend(self, key: Data, value: Data) -> bool:
        """
        C{prepend}: add data before a live item's value, keeping its flags
        and expiry time.

        @return: whether there was an item to prepend to (and the result fit).
        """
        return self._store(storage.PREPEND, key, value, 0, 0) is STORED

    def cas(self, key: Data, value: Data, cas: int, expire: int = 0, flags: int = 0) -> bool | None:
        """
        C{cas}: store the item only if it has not changed since L{gets}
        returned C{cas}.

        @return: L{True} if stored, L{False} if the item has changed since
            (C{EXISTS}), L{None} if there is no live item (C{NOT_FOUND}).
        """
        outcome = self._store(
            storage.CAS, key, value, expire, flags, _checkRange("cas", cas, 0, _UINT64 - 1)
        )
        if outcome is NOT_FOUND:
            return None
        return outcome is STORED

    def _store(
        self, mode: bytes, key: Data, value: Data, expire: int, flags: int, cas: int = 0
    ) -> Outcome:
        data = _encodeValue(value)
        raw = encodeKey(key)
        flags = _checkRange("flags", flags, 0, _UINT32 - 1)
        cache = self._cache
        if cache.prefixStats.enabled:
            cache.prefixStats.recordSet(raw)
        storage.admitItem(cache, raw, len(data), flags, mode, mode == storage.SET)
        expires = cache.expiry(_checkRange("expire", expire, _INT32_MIN, _INT32_MAX))
        outcome, _ = storage.storeItem(cache, mode, raw, data, flags, expires, cas)
        return outcome

    # Other item commands

    def delete(self, key: Data) -> bool:
        """
        C{delete}: remove a live item.

        @return: whether there was one.
        """
        raw = encodeKey(key)
        if self._cache.prefixStats.enabled:
            self._cache.prefixStats.recordDelete(raw)
        return items.deleteItem(self._cache, raw) is not NOT_FOUND

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
        raw = encodeKey(key)
        delta = _checkRange("delta", delta, 0, _UINT64 - 1)
        outcome, _, digits = arithmetic.addDelta(self._cache, raw, increment, delta)
        if outcome is NOT_FOUND:
            arithmetic.countMiss(self._cache, increment)
            return None
        return int(digits)

    def touch(self, key: Data, expire: int) -> bool:
        """
        C{touch}: give a live item a new expiry time.

        @return: whether there was one.
        """
        expires = self._cache.expiry(_checkRange("expire", expire, _INT32_MIN, _INT32_MAX))
        return retrieval.touchItem(self._cache, encodeKey(key), expires) is not None

    def flushAll(self, delay: int = 0) -> None:
        """
        C{flush_all}: invalidate every item, now or after C{delay} seconds.
        """
        items.flush(self._cache, _checkRange("delay", delay, _INT32_MIN, _INT32_MAX))

    def stats(self) -> dict[str, str]:
        """
        C{stats}: the general statistics, as a client sees them.

        @return: each statistic's value, as text, by name.
        """
        return {name: str(value) for name, value in admin.generalStats(self._cache)}
