"""
Tests for snapshots: saving the store, loading it after a restart, and
refusing files that are not intact.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock, Cooperator
from twisted.logger import LogLevel, capturedLogs
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from myproto.snapshot import (
    ITEMS_PER_SLICE,
    SnapshotError,
    SnapshotService,
    decodeItems,
    encodeItems,
)
from myproto.store import MemoryStore

START = 1_700_000_000.0

# One reactor turn, for the cooperator that walks the store while saving.
TURN = 0.001


def synchronous(function: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """
    Run the "finish in a thread" step at once, for tests without threads.
    """
    return maybeDeferred(function, *args)


#: The snapshot of L{SnapshotBytesTests}'s store, written out by hand from the
#: format in L{myproto.snapshot}'s docstring.  All integers big-endian;
#: 1_700_000_000.0 as an f64 is 41 d9 54 fc 40 00 00 00.
SNAPSHOT_BYTES = (
    b"MYPROTO-SNAPSHOT\n"
    b"\x00\x01"  # version 1
    b"\x41\xd9\x54\xfc\x40\x80\x00\x00"  # savedAt 1_700_000_002.0
    # "a" = "alpha", flags 5, never expires, last access START, CAS 1
    b"I"
    b"\x00\x01"  # keyLength 1
    b"\x00\x00\x00\x05"  # flags 5
    b"\x00\x00\x00\x00\x00\x00\x00\x00"  # expires 0.0
    b"\x41\xd9\x54\xfc\x40\x00\x00\x00"  # lastAccess 1_700_000_000.0
    b"\x00\x00\x00\x00\x00\x00\x00\x01"  # cas 1
    b"\x00\x00\x00\x05"  # valueLength 5
    b"a"
    b"alpha"
    # "k2" = "\r\nv\0", flags 2**32 - 1, expires START + 100, last access
    # START + 1, CAS 2
    b"I"
    b"\x00\x02"
    b"\xff\xff\xff\xff"
    b"\x41\xd9\x54\xfc\x59\x00\x00\x00"  # expires 1_700_000_100.0
    b"\x41\xd9\x54\xfc\x40\x40\x00\x00"  # lastAccess 1_700_000_001.0
    b"\x00\x00\x00\x00\x00\x00\x00\x02"
    b"\x00\x00\x00\x04"
    b"k2"
    b"\r\nv\x00"
    b"E"
    b"\x00\x00\x00\x00\x00\x00\x00\x02"  # count 2
    b"\xdc\x72\x5f\x65"  # CRC-32 of everything before the "E"
)


class SnapshotBytesTests(SynchronousTestCase):
    """
    The file format, byte for byte: a change to it is a change to this
    test, never one that a round trip through the same code hides.
    """

    def test_encode(self) -> None:
        """
        A small store with a fixed clock and fixed CAS values is written as
        exactly L{SNAPSHOT_BYTES}.
        """
        clock = Clock()
        clock.advance(START)
        store = MemoryStore(clock)
        store.put(b"a", b"alpha", 5, 0.0)
        clock.advance(1)
        store.put(b"k2", b"\r\nv\x00", 2**32 - 1, START + 100)
        self.assertEqual(b"".join(encodeItems(store, START + 2)), SNAPSHOT_BYTES)

    def test_decode(self) -> None:
        """
        L{SNAPSHOT_BYTES} reads back as its two items, least recently used
        first: C{(key, value, flags, expires, cas, lastAccess)}.
        """
        self.assertEqual(
            list(decodeItems(SNAPSHOT_BYTES)),
            [
                (b"a", b"alpha", 5, 0.0, 1, 1_700_000_000.0),
                (b"k2", b"\r\nv\x00", 4294967295, 1_700_000_100.0, 2, 1_700_000_001.0),
            ],
        )


class SnapshotFormatTests(SynchronousTestCase):
    """
    The file format on its own.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryStore(self.clock)
        self.store.put(b"a", b"alpha", 5, 0.0)
        self.store.put(b"b", b"\r\nbin\x00ary", 0, START + 100)
        self.store.put(b"c", b"", 2**32 - 1, 0.0)

    def encoded(self) -> bytes:
        return b"".join(encodeItems(self.store, START))

    def test_roundTrip(self) -> None:
        """
        Every item comes back with its value, flags, expiry time and CAS,
        least recently used first.
        """
        self.assertEqual(
            list(decodeItems(self.encoded())),
            [
                (b"a", b"alpha", 5, 0.0, 1, START),
                (b"b", b"\r\nbin\x00ary", 0, START + 100, 2, START),
                (b"c", b"", 2**32 - 1, 0.0, 3, START),
            ],
        )

    def test_expiredLeftOut(self) -> None:
        """
        Items already expired when the walk reaches them are not written.
        """
        self.store.put(b"d", b"gone", 0, START + 1)
        self.clock.advance(2)
        self.assertNotIn(b"d", [record[0] for record in decodeItems(self.encoded())])

    def test_everyTruncationDetected(self) -> None:
        """
        A file cut short at any byte is refused as a whole.
        """
        data = self.encoded()
        for length in range(len(data)):
            self.assertRaises(SnapshotError, decodeItems, data[:length])

    def test_everyCorruptionDetected(self) -> None:
        """
        A file with any one byte changed is refused as a whole.
        """
        data = self.encoded()
        for position in range(len(data)):
            damaged = bytearray(data)
            damaged[position] ^= 0x41
            self.assertRaises(SnapshotError, decodeItems, bytes(damaged))

    def test_unknownVersion(self) -> None:
        """
        A file of another format version is refused, naming the version.
        """
        data = bytearray(self.encoded())
        data[len(b"MYPROTO-SNAPSHOT\n") + 1] = 9
        error = self.assertRaises(SnapshotError, decodeItems, bytes(data))
        self.assertIn("version 9", str(error))

    def test_slices(self) -> None:
        """
        Saving yields one chunk per slice of items, so a large store is
        written over several reactor turns.
        """
        for number in range(ITEMS_PER_SLICE * 3):
            self.store.put(b"k%d" % (number,), b"v", 0, 0.0)
        chunks = list(encodeItems(self.store, START))
        self.assertEqual(len(chunks), 1 + 4 + 1)


class SnapshotServiceTests(SynchronousTestCase):
    """
    The service that loads at start and saves periodically and at stop.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.path = FilePath(self.mktemp())
        self.path.parent().makedirs(ignoreExistingDirectory=True)
        self.store = MemoryStore(self.clock)
        self.cooperator = Cooperator(
            terminationPredicateFactory=lambda: lambda: True,
            scheduler=lambda step: self.clock.callLater(TURN, step),
        )

    def service(self, store: MemoryStore, interval: float = 0.0) -> SnapshotService:
        return SnapshotService(
            store, self.path, self.clock, interval, cooperator=self.cooperator, finish=synchronous
        )

    def waitFor(self, deferred: Deferred[Any]) -> None:
        """
        Turn the clock until C{deferred} fires.
        """
        for _ in range(10_000):
            if deferred.called:
                break
            self.clock.advance(TURN)
        self.successResultOf(deferred)

    def restart(self) -> MemoryStore:
        store = MemoryStore(self.clock)
        self.service(store).startService()
        return store

    def test_restartServesTheSameItems(self) -> None:
        """
        After stop and start, the store has the same items, flags, CAS and
        absolute expiry times; new CAS uniques are larger than old ones.
        """
        service = self.service(self.store)
        service.startService()
        self.store.put(b"a", b"1", 3, 0.0)
        self.store.put(b"b", b"2", 0, START + 50)
        self.waitFor(service.stopService())
        store = self.restart()
        self.assertEqual(
            [(i.key, i.value, i.flags, i.expires, i.cas) for i in store.items()],
            [(i.key, i.value, i.flags, i.expires, i.cas) for i in self.store.items()],
        )
        newest = max(item.cas for item in self.store.items())
        self.assertGreater(store.put(b"c", b"3", 0, 0.0).cas, newest)

    def test_ttlRunsWhileDown(self) -> None:
        """
        Time passes while the server is down: an item that expired meanwhile
        is not loaded, and one still alive keeps its original deadline.
        """
        service = self.service(self.store)
        self.store.put(b"short", b"s", 0, START + 10)
        self.store.put(b"long", b"l", 0, START + 100)
        self.waitFor(service.save())
        self.clock.advance(60)
        with capturedLogs() as events:
            store = self.restart()
        self.assertIsNone(store.get(b"short"))
        self.assertEqual(store.get(b"long").expires, START + 100)
        self.assertIn("1 had expired", " ".join(e["log_format"].format(**e) for e in events))
        self.clock.advance(40)
        self.assertIsNone(store.get(b"long"))

    def test_periodicSaves(self) -> None:
        """
        With an interval, a snapshot is written every interval.
        """
        service = self.service(self.store, interval=30)
        service.startService()
        self.store.put(b"a", b"1", 0, 0.0)
        self.assertFalse(self.path.exists())
        self.clock.advance(30)
        for _ in range(10):
            self.clock.advance(TURN)
        self.assertEqual([record[0] for record in decodeItems(self.path.getContent())], [b"a"])
        self.store.put(b"b", b"2", 0, 0.0)
        self.clock.advance(30)
        for _ in range(10):
            self.clock.advance(TURN)
        self.assertEqual(len(list(decodeItems(self.path.getContent()))), 2)
        self.waitFor(service.stopService())

    def test_deletedDuringSaveNotResurrected(self) -> None:
        """
        A key deleted while a save walks the store is not in the snapshot,
        and requests are served between slices.
        """
        for number in range(ITEMS_PER_SLICE * 3):
            self.store.put(b"k%d" % (number,), b"v", 0, 0.0)
        saving = self.service(self.store).save()
        self.clock.advance(TURN)
        last = b"k%d" % (ITEMS_PER_SLICE * 3 - 1,)
        self.assertTrue(self.store.delete(last))
        self.waitFor(saving)
        keys = [record[0] for record in decodeItems(self.path.getContent())]
        self.assertEqual(len(keys), ITEMS_PER_SLICE * 3 - 1)
        self.assertNotIn(last, keys)

    def test_savesDoNotOverlap(self) -> None:
        """
        A save asked for during another runs after it, and sees the changes
        made before it was asked for.
        """
        service = self.service(self.store)
        first = service.save()
        self.store.put(b"late", b"x", 0, 0.0)
        second = service.save()
        self.waitFor(first)
        self.waitFor(second)
        self.assertIn(b"late", [record[0] for record in decodeItems(self.path.getContent())])

    def test_corruptFileSetAside(self) -> None:
        """
        A damaged snapshot is reported, moved aside for inspection, and the
        server starts empty rather than serving garbage.
        """
        self.store.put(b"a", b"1", 0, 0.0)
        self.waitFor(self.service(self.store).save())
        data = bytearray(self.path.getContent())
        data[-10] ^= 0xFF
        self.path.setContent(bytes(data))
        with capturedLogs() as events:
            store = self.restart()
        self.assertEqual(len(store), 0)
        self.assertFalse(self.path.exists())
        aside = self.path.sibling("%s.corrupt-%d" % (self.path.basename(), int(START)))
        self.assertEqual(aside.getContent(), bytes(data))
        self.assertEqual(
            [e["log_level"] for e in events if e["log_level"] is LogLevel.error], [LogLevel.error]
        )

    def test_noFile(self) -> None:
        """
        Without a snapshot file the store starts empty.
        """
        store = self.restart()
        self.assertEqual(len(store), 0)

    def test_failedSaveKeepsOldSnapshot(self) -> None:
        """
        When finishing a save fails, the previous snapshot stays in place and
        no temporary file is left behind.
        """
        self.store.put(b"a", b"1", 0, 0.0)
        self.waitFor(self.service(self.store).save())
        good = self.path.getContent()

        def failing(function: Callable[..., Any], *args: Any) -> Deferred[Any]:
            raise OSError("disk full")

        self.store.put(b"b", b"2", 0, 0.0)
        service = SnapshotService(
            self.store, self.path, self.clock, cooperator=self.cooperator, finish=failing
        )
        with capturedLogs():
            saving = service.save()
            for _ in range(10):
                self.clock.advance(TURN)
        self.failureResultOf(saving, OSError)
        self.assertEqual(self.path.getContent(), good)
        self.assertEqual(self.path.parent().children(), [self.path])
