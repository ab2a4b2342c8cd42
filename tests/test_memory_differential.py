"""
C{-M} (C{--disable-evictions}) against a real memcached 1.6.18 started with
C{-M}: when memory is full, a store fails with memcached's error (text and
binary) instead of evicting, counted in C{store_no_memory}, and every item
stored before stays readable.

How many items fit differs (memcached counts slab pages, myproto what items
cost in its memory: see the README's "What -m bounds"), so the two are
compared by the shape of their replies, not the count.

Needs the C{memcached} binary on C{PATH}.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from tests.helpers import binaryRequest, parseStats, storage, waitFor
from tests.reference import HOST, exchange, freePort, startMemcached

LIMIT_MB = 2
VALUE = b"B" * 8192
# Enough 8 KiB items to fill 2 MiB one and a half times.
COUNT = 400

STORED = b"STORED\r\n"
NO_MEMORY = b"SERVER_ERROR out of memory storing object\r\n"

SET_OPCODE = 0x01
QUIT_OPCODE = 0x07

_SETTING = re.compile(rb"STAT evictions (\w+)\r\n")


async def listenMyproto(testCase: TestCase) -> int:
    """
    Serve a myproto with C{-m 2 -M} on a free loopback port until the test
    ends.

    @return: the port number.
    """
    from twisted.internet import reactor

    port = freePort()
    description = "tcp:{}:interface={}".format(port, HOST)
    settings = ServerSettings(listen=(description,), memoryLimit=LIMIT_MB * 1024 * 1024, evictions=False)
    store = MemoryStore(reactor, maxBytes=settings.memoryLimit, evictions=settings.evictions)
    factory = WrappingFactory(CacheServerFactory(store, reactor, settings))
    listening = await serverFromString(reactor, description).listen(factory)

    async def stop() -> None:
        await waitFor(lambda: not factory.protocols, 5.0, "myproto's connections to close")
        await listening.stopListening()

    testCase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return port


class DisableEvictionsTests(TestCase):
    """
    myproto with C{-M} fails stores as memcached with C{-M} does.
    """

    timeout = 120

    async def fill(self, port: int) -> tuple[int, bytes, dict[str, str], bytes, bytes]:
        """
        Fill the server, then ask it for one more item in text and binary,
        for its stats, and for every item it said it stored.

        @return: how many were stored, the replies to the extra sets, the
            stats, the C{evictions} setting, and the gets' replies.
        """
        sets = b"".join(b"set dash%d 0 0 %d\r\n%s\r\n" % (i, len(VALUE), VALUE) for i in range(COUNT))
        replies = (await exchange(HOST, port, [sets])).data
        stored = replies.count(STORED)
        # All STORED, then all refused: nothing was evicted to make room.
        self.assertEqual(replies, STORED * stored + NO_MEMORY * (COUNT - stored))
        extra = (await exchange(HOST, port, [b"set extra 0 0 %d\r\n%s\r\n" % (len(VALUE), VALUE)])).data
        extra += (
            await exchange(
                HOST,
                port,
                [binaryRequest(SET_OPCODE, b"bin", storage(), VALUE, opaque=7), binaryRequest(QUIT_OPCODE)],
                quit=False,
            )
        ).data
        stats = parseStats((await exchange(HOST, port, [b"stats\r\n"])).data)
        settings = (await exchange(HOST, port, [b"stats settings\r\n"])).data
        match = _SETTING.search(settings)
        assert match is not None
        gets = b"".join(b"get dash%d\r\n" % (i,) for i in range(stored))
        got = (await exchange(HOST, port, [gets])).data
        return stored, extra, stats, match.group(1), got

    def test_outOfMemory(self) -> Deferred[None]:
        """
        Both refuse the same way once full, count it the same way, evict
        nothing, and keep every item they stored.
        """

        async def check() -> None:
            memcached = await startMemcached(self, options=["-M", "-m", str(LIMIT_MB)])
            myproto = await listenMyproto(self)
            expected = await self.fill(memcached.port)
            got = await self.fill(myproto)
            for stored, extra, stats, setting, gets in (expected, got):
                self.assertGreater(stored, 0)
                self.assertLess(stored, COUNT)
                self.assertEqual(gets, b"".join(b"VALUE dash%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(VALUE), VALUE) for i in range(stored)))
            self.assertEqual(got[1], expected[1])
            # No evictions; the refusals counted: the fill's and the text
            # set's (memcached's binary path does not count its refusal);
            # items held: those stored.
            self.assertEqual(
                [
                    (int(stats["evictions"]), int(stats["store_no_memory"]) - (COUNT - stored), int(stats["curr_items"]) - stored)
                    for stored, _, stats, _, _ in (got, expected)
                ],
                [(0, 1, 0)] * 2,
            )
            self.assertEqual((got[3], expected[3]), (b"off", b"off"))

        return Deferred.fromCoroutine(check())
