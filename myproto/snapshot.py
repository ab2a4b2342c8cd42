"""
A cache that survives restarts: the store saved to a file and loaded again.

The file format (version 1), all integers big-endian::

    magic  "MYPROTO-SNAPSHOT\\n"
    header version:u16  savedAt:f64
    items  "I" keyLength:u16 flags:u32 expires:f64 lastAccess:f64 cas:u64
           valueLength:u32 key value
    end    "E" count:u64 crc32:u32     (CRC-32 of every byte before the "E")

C{expires} is an absolute unix time (0 for never), so remaining TTLs keep
running while the server is down; C{lastAccess} puts the LRU back in order.  A file is written under a temporary name,
flushed to disk and renamed over the old one, so a crash mid-save leaves the
previous snapshot in place.  Saving walks the store a slice at a time between
reactor turns, so requests are still answered during a save.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any, BinaryIO, Callable, Generator, Iterator

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from myproto.store import MemoryStore

MAGIC = b"MYPROTO-SNAPSHOT\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("!Hd")
_ITEM = struct.Struct("!HIddQI")
_END = struct.Struct("!QI")
ITEM_MARK = b"I"
END_MARK = b"E"

# Items serialised per reactor turn while saving: small enough that one turn
# takes a few milliseconds, large enough that a save of a million items does
# not take thousands of turns.
ITEMS_PER_SLICE = 1000


class SnapshotError(Exception):
    """
    A snapshot file that cannot be trusted: truncated, corrupted, or of an
    unknown format.
    """


def encodeItems(store: MemoryStore, savedAt: float) -> Iterator[bytes]:
    """
    Serialise the store, yielding the file's bytes a slice of items at a
    time.  Keys deleted or expired while the walk is under way are left out;
    each key is written as it is when the walk reaches it, in no particular
    order.

    @param store: the store to save.
    @param savedAt: the unix time to record.
    @return: an iterator of byte strings, the whole file when joined.
    """
    checksum = 0
    count = 0
    head = MAGIC + _HEADER.pack(FORMAT_VERSION, savedAt)
    checksum = zlib.crc32(head, checksum)
    yield head
    held = store.allItems()
    for start in range(0, len(held), ITEMS_PER_SLICE):
        parts = []
        for seen in held[start : start + ITEMS_PER_SLICE]:
            key = seen.key
            item = store.find(key)
            if item is None:
                continue
            parts.append(ITEM_MARK)
            parts.append(
                _ITEM.pack(
                    len(key), item.flags, item.expires, item.lastAccess, item.cas, len(item.value)
                )
            )
            parts.append(key)
            parts.append(item.value)
            count += 1
        chunk = b"".join(parts)
        checksum = zlib.crc32(chunk, checksum)
        yield chunk
    yield END_MARK + _END.pack(count, checksum)


def decodeItems(data: bytes) -> Iterator[tuple[bytes, bytes, int, float, int, float]]:
    """
    Check and parse a whole snapshot file.

    The checksum and framing are verified before the first item is yielded,
    so a bad file never yields anything.

    @param data: the file's contents.
    @return: an iterator of C{(key, value, flags, expires, cas, lastAccess)},
        least recently used first.
    @raise SnapshotError: when the file is not a complete, intact snapshot.
    """
    if not data.startswith(MAGIC):
        raise SnapshotError("not a myproto snapshot (bad magic)")
    position = len(MAGIC)
    if len(data) < position + _HEADER.size:
        raise SnapshotError("truncated header")
    version, _ = _HEADER.unpack_from(data, position)
    if version != FORMAT_VERSION:
        raise SnapshotError("unknown format version %d" % (version,))
    position += _HEADER.size
    trailer = len(data) - 1 - _END.size
    if trailer < position or data[trailer : trailer + 1] != END_MARK:
        raise SnapshotError("truncated: no end record")
    count, checksum = _END.unpack_from(data, trailer + 1)
    if zlib.crc32(memoryview(data)[:trailer]) != checksum:
        raise SnapshotError("checksum mismatch")
    records = []
    while position < trailer:
        if data[position : position + 1] != ITEM_MARK or position + 1 + _ITEM.size > trailer:
            raise SnapshotError("bad item record at byte %d" % (position,))
        keyLength, flags, expires, lastAccess, cas, valueLength = _ITEM.unpack_from(
            data, position + 1
        )
        position += 1 + _ITEM.size
        end = position + keyLength + valueLength
        if end > trailer:
            raise SnapshotError("item overruns the file at byte %d" % (position,))
        key = data[position : position + keyLength]
        records.append((key, data[position + keyLength : end], flags, expires, cas, lastAccess))
        position = end
    if len(records) != count:
        raise SnapshotError("item count %d does not match %d" % (len(records), count))
    records.sort(key=lambda record: record[5])
    return iter(records)


def _writeAndReplace(temporary: FilePath, final: FilePath) -> None:
    """
    Make a written temporary file durable and atomically put it in place.
    Runs in a thread: fsync can take long on a large file.
    """
    with open(temporary.path, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary.path, final.path)
    directory = os.open(final.parent().path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class SnapshotService(Service):
    """
    Loads the store from a snapshot at start, saves it every C{interval}
    seconds while running, and once more when stopped.

    @ivar lastSave: statistics of the last save: items, bytes, seconds.
    """

    log = Logger()

    def __init__(
        self,
        store: MemoryStore,
        path: FilePath,
        clock: IReactorTime,
        interval: float = 0.0,
        cooperator: task.Cooperator | None = None,
        finish: Callable[..., Deferred[Any]] = deferToThread,
    ) -> None:
        self.store = store
        self.path = path
        self.clock = clock
        self.interval = interval
        self._cooperate = cooperator.cooperate if cooperator is not None else task.cooperate
        self._finish = finish
        self._saving = False
        self._waiting: list[Deferred[None]] = []
        self._loop: task.LoopingCall | None = None
        self.lastSave: dict[str, float] = {}

    def startService(self) -> None:
        super().startService()
        self.load()
        if self.interval > 0:
            self._loop = task.LoopingCall(self._periodicSave)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.save()

    def load(self) -> int:
        """
        Fill the store from the snapshot file, if there is one.  Items that
        expired while the server was down are skipped.  A bad file is moved
        aside (C{<name>.corrupt-<time>}) and the store starts empty.

        @return: how many items were loaded.
        """
        if not self.path.exists():
            self.log.info("No snapshot at {path}; starting empty", path=self.path.path)
            return 0
        data = self.path.getContent()
        try:
            records = decodeItems(data)
        except SnapshotError as error:
            aside = self.path.sibling(
                "%s.corrupt-%d" % (self.path.basename(), int(self.clock.seconds()))
            )
            self.path.moveTo(aside)
            self.log.error(
                "Snapshot {path} is unusable ({why}); moved to {aside}, starting empty",
                path=self.path.path,
                why=str(error),
                aside=aside.path,
            )
            return 0
        now = self.clock.seconds()
        loaded = expired = 0
        for key, value, flags, expires, cas, lastAccess in records:
            if expires and expires <= now:
                expired += 1
                continue
            if self.store.restore(key, value, flags, expires, cas, lastAccess) is not None:
                loaded += 1
        self.log.info(
            "Loaded {loaded} items from snapshot {path} ({expired} had expired)",
            loaded=loaded,
            path=self.path.path,
            expired=expired,
        )
        return loaded

    def save(self) -> Deferred[None]:
        """
        Save the store, a slice per reactor turn.  Saves never overlap: one
        asked for while another runs starts when that one ends, so it sees
        every change made before it was asked for.

        @return: a L{Deferred} that fires when the snapshot is in place.
        """
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        if not self._saving:
            self._startSave()
        return waiter

    def _startSave(self) -> None:
        waiters, self._waiting = self._waiting, []
        self._saving = True

        def finished(outcome: object) -> None:
            self._saving = False
            for waiter in waiters:
                if isinstance(outcome, Failure):
                    waiter.errback(outcome)
                else:
                    waiter.callback(None)
            if self._waiting:
                self._startSave()

        self._save().addBoth(finished)

    @inlineCallbacks
    def _save(self) -> Generator[Deferred[Any], Any, None]:
        started = self.clock.seconds()
        temporary = self.path.temporarySibling(".saving")
        handle: BinaryIO = open(temporary.path, "wb")
        written = 0
        try:
            chunks = encodeItems(self.store, started)

            def writeSlices() -> Iterator[None]:
                nonlocal written
                for chunk in chunks:
                    handle.write(chunk)
                    written += len(chunk)
                    yield None

            yield self._cooperate(writeSlices()).whenDone()
            handle.close()
            yield self._finish(_writeAndReplace, temporary, self.path)
        except Exception as error:
            handle.close()
            if temporary.exists():
                temporary.remove()
            self.log.error("Saving snapshot {path} failed: {why}", path=self.path.path, why=error)
            raise
        self.lastSave = {"bytes": written, "seconds": self.clock.seconds() - started}
        self.log.info(
            "Saved snapshot {path}: {bytes} bytes in {seconds:.3f}s",
            path=self.path.path,
            bytes=written,
            seconds=self.lastSave["seconds"],
        )

    def _periodicSave(self) -> Deferred[None]:
        return self.save().addErrback(lambda _: None)
