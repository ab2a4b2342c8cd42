"""
Tests for the meta commands (L{myproto.wire.meta}), driven through a real
connection on a L{StringTransport}.  The expected bytes are memcached
1.6.18's, checked against the real server.
"""

from __future__ import annotations

import base64

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from myproto.commands.admin import generalStats
from myproto.protocol import CacheServerFactory
from myproto.store import SLAB_SIZES, slabClass
from myproto.wire import classic, meta, text
from myproto.store import MemoryStore

# A realistic wall clock, so that absolute expiry times behave as they do on
# a real server.
EPOCH = 1_700_000_000


class MetaTestCase(SynchronousTestCase):
    """
    A connection to a fresh server on a fake clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.store = MemoryStore(self.clock)
        self.factory = CacheServerFactory(self.store, self.clock)
        self.proto = self.connect()

    def connect(self) -> object:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.transport = transport
        return proto

    def send(self, data: bytes, proto: object = None) -> bytes:
        """
        Send bytes in one read and return what the server wrote back.
        """
        proto = proto or self.proto
        transport = proto.transport  # type: ignore[attr-defined]
        transport.clear()
        proto.dataReceived(data)  # type: ignore[attr-defined]
        return transport.value()  # type: ignore[no-any-return]

    def sendEach(self, *requests: bytes) -> bytes:
        """
        Send each request in a read of its own (so that memcached would have
        written its replies in between).
        """
        return b"".join(self.send(request) for request in requests)

    def casOf(self, key: bytes) -> int:
        reply = self.send(b"gets " + key + b"\r\n")
        return int(reply.split(b"\r\n")[0].split(b" ")[4])

    def stat(self, name: str) -> object:
        return dict(generalStats(self.factory.cache))[name]


class MetaParsingTests(MetaTestCase):
    """
    Malformed meta commands get memcached's errors, word for word.
    """

    def test_tooFewTokens(self) -> None:
        """
        C{mg}, C{ms}, C{md} and C{ma} without a key are unknown commands;
        C{me} without one, and C{ms} without a length, are format errors.
        """
        self.assertEqual(
            self.send(b"mg\r\nms\r\nmd\r\nma\r\nme\r\nms k\r\n"),
            b"ERROR\r\nERROR\r\nERROR\r\nERROR\r\n"
            b"CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n",
        )

    def test_unknownMetaVerb(self) -> None:
        """
        Other two-letter verbs starting with C{m} are unknown.
        """
        self.assertEqual(self.send(b"mx k\r\nmz k HTTP/1.1\r\n"), b"ERROR\r\nERROR\r\n")

    def test_keyTooLong(self) -> None:
        """
        A key over 250 bytes is a format error, even with C{q}.
        """
        key = b"k" * 251
        for verb in (b"mg", b"md", b"ma", b"me"):
            self.assertEqual(
                self.send(verb + b" " + key + b" q\r\n"), b"CLIENT_ERROR bad command line format\r\n"
            )
        self.assertEqual(self.send(b"mg " + b"k" * 250 + b" q\r\nmn\r\n"), b"MN\r\n")

    def test_tooManyTokens(self) -> None:
        """
        More than 17 flags are refused; mg words it differently.
        """
        flags = b" ".join(b"O%d" % (n,) for n in range(18))
        self.assertEqual(self.send(b"mg k " + flags + b"\r\n"), b"CLIENT_ERROR options flags are too long\r\n")
        self.assertEqual(self.send(b"md k " + flags + b"\r\n"), b"CLIENT_ERROR options flags too long\r\n")
        self.assertEqual(self.send(b"ma k " + flags + b"\r\n"), b"CLIENT_ERROR options flags too long\r\n")
        self.assertEqual(
            self.send(b"ms k 1 " + flags[3:] + b"\r\nx\r\n"),
            b"CLIENT_ERROR options flags too long\r\nERROR\r\n",
        )
        most = b"k s t c f h l u v Oa Pa La I D1 J1 F1 C1"
        self.assertEqual(self.send(b"mg k " + most + b"\r\n"), b"EN kk Oa\r\n")
        self.assertEqual(
            self.send(b"mg k " + most + b" M1\r\n"), b"CLIENT_ERROR options flags are too long\r\n"
        )

    def test_invalidFlag(self) -> None:
        """
        Flags memcached 1.6.18 does not know (among them E, x and S, which
        later versions added) are refused.
        """
        self.assertEqual(
            self.send(b"mg k E5\r\nmg k e\r\nms k 1 S1\r\nx\r\nmg k Z\r\n"),
            b"CLIENT_ERROR invalid flag\r\n" * 4,
        )
        self.assertEqual(
            self.send(b"md k x\r\nma k E5\r\n"), b"CLIENT_ERROR invalid or duplicate flag\r\n" * 2
        )

    def test_duplicateFlag(self) -> None:
        """
        A flag given twice, or a flag byte above 126, is a duplicate.
        """
        self.assertEqual(
            self.send(b"mg k v v\r\nmg k T1 T2\r\nmg k \xff\r\nmg k \x7f\r\n"),
            b"CLIENT_ERROR duplicate flag\r\n" * 4,
        )
        self.assertEqual(self.send(b"md k q q\r\n"), b"CLIENT_ERROR invalid or duplicate flag\r\n")

    def test_badTokens(self) -> None:
        """
        N, T, R and C need numbers; a bad F keeps the default message; J,
        D and M have messages of their own.
        """
        self.assertEqual(
            self.send(
                b"mg k Tx\r\nmg k N\r\nmg k R1x\r\nmg k C-\r\nmg k Fx\r\n"
                b"mg k Jx\r\nmg k D-1\r\nmg k MSS\r\nmg k M\r\n"
            ),
            b"CLIENT_ERROR bad token in command line format\r\n" * 4
            + b"CLIENT_ERROR bad command line format\r\n"
            + b"CLIENT_ERROR invalid numeric initial value\r\n"
            + b"CLIENT_ERROR invalid numeric delta value\r\n"
            + b"CLIENT_ERROR incorrect length for M token\r\n" * 2,
        )

    def test_numbersAsMemcachedReadsThem(self) -> None:
        """
        Numbers are read as C's strtol reads them: a sign, surrounding
        whitespace other than spaces.
        """
        self.assertEqual(
            self.send(b"ms k 1 T+100 F\t7\r\nx\r\nmg k t f\r\n"), b"HD\r\nHD t100 f7\r\n"
        )

    def test_lastErrorWins(self) -> None:
        """
        Errors that do not stop the reading are overwritten by later ones;
        an unknown or repeated flag stops it at once.
        """
        self.assertEqual(
            self.send(b"mg k Tx Jx\r\nmg k Jx Tx\r\nmg k Tx x Jx\r\nmg k Tx Fx\r\n"),
            b"CLIENT_ERROR invalid numeric initial value\r\n"
            b"CLIENT_ERROR bad token in command line format\r\n"
            b"CLIENT_ERROR invalid flag\r\n"
            b"CLIENT_ERROR bad token in command line format\r\n",
        )

    def test_badBase64Key(self) -> None:
        """
        A key that does not decode as base64 fails the command.
        """
        self.assertEqual(
            self.send(b"mg abc b\r\nmg ==== b\r\nmg YW*J b v\r\nmd abc b\r\nme abc b\r\n"),
            b"CLIENT_ERROR error decoding key\r\n" * 3
            + b"CLIENT_ERROR invalid or duplicate flag\r\n"
            + b"CLIENT_ERROR bad command line format\r\n",
        )

    def test_errorsIgnoreQuiet(self) -> None:
        """
        q never hides an error.
        """
        self.assertEqual(self.send(b"mg k q Tx\r\nmd k q x\r\n"), b"CLIENT_ERROR bad token in command line format\r\nCLIENT_ERROR invalid or duplicate flag\r\n")

    def test_parseRequest(self) -> None:
        """
        L{text.parseRequest} hands meta lines to L{meta.parseMetaRequest},
        which keeps the flags in order and decodes a base64 key.
        """
        request = text.parseRequest(b"mg YWJj b T30 v k Oxy")
        self.assertIsInstance(request, meta.MetaGetRequest)
        self.assertEqual(request.flags.key, b"abc")
        self.assertTrue(request.flags.binaryKey)
        self.assertEqual(request.flags.tokens, (b"b", b"T30", b"v", b"k", b"Oxy"))
        self.assertEqual(request.flags.ttl, 30)
        self.assertTrue(request.flags.withValue)
        self.assertTrue(request.flags.locked)
        self.assertFalse(request.noreply)
        setRequest = text.parseRequest(b"ms k 5 zz")
        self.assertIsInstance(setRequest, meta.MetaSetRequest)
        self.assertIsInstance(setRequest, classic.DATA_REQUESTS)
        self.assertEqual((setRequest.size, setRequest.refusal), (5, b"invalid flag"))

    def test_decodeKey(self) -> None:
        """
        memcached's base64 decoder skips bytes outside the alphabet and stops
        after the first padded group.
        """
        self.assertEqual(meta.decodeKey(b"YWJj"), b"abc")
        self.assertEqual(meta.decodeKey(b"Y*W.Jj"), b"abc")
        self.assertEqual(meta.decodeKey(b"YQ==YWJj"), b"a")
        self.assertEqual(meta.decodeKey(b"YWI="), b"ab")
        self.assertIsNone(meta.decodeKey(b"YWJ"))
        self.assertIsNone(meta.decodeKey(b"Y==="))
        self.assertIsNone(meta.decodeKey(b""))
        self.assertIsNone(meta.decodeKey(b"!!!!"))


class MetaGetTests(MetaTestCase):
    """
    C{mg} and each of its flags.
    """

    def setUp(self) -> None:
        super().setUp()
        self.send(b"set k 7 100 3\r\nabc\r\n")

    def test_missAndHit(self) -> None:
        """
        A miss is C{EN}; a hit without flags is a bare C{HD}.
        """
        self.assertEqual(self.send(b"mg nope\r\nmg k\r\n"), b"EN\r\nHD\r\n")

    def test_quiet(self) -> None:
        """
        q hides C{EN}, but not a hit.
        """
        self.assertEqual(self.send(b"mg nope q\r\nmg k q\r\nmn\r\n"), b"HD\r\nMN\r\n")
        self.assertEqual(self.send(b"mg nope q k Oab\r\n"), b"")

    def test_value(self) -> None:
        """
        v returns the value in a data block after C{VA <size>}.
        """
        self.assertEqual(self.send(b"mg k v\r\n"), b"VA 3\r\nabc\r\n")

    def test_sizeFlagsCasTtl(self) -> None:
        """
        s, f, c and t report the size, client flags, CAS and remaining TTL,
        in the order asked.
        """
        cas = self.casOf(b"k")
        self.assertEqual(self.send(b"mg k t c f s\r\n"), b"HD t100 c%d f7 s3\r\n" % (cas,))
        self.clock.advance(40)
        self.assertEqual(self.send(b"mg k s t\r\n"), b"HD s3 t60\r\n")
        self.send(b"set forever 0 0 1\r\nx\r\n")
        self.assertEqual(self.send(b"mg forever t f\r\n"), b"HD t-1 f0\r\n")

    def test_keyAndOpaque(self) -> None:
        """
        k and O come back on hits and misses.
        """
        self.assertEqual(
            self.send(b"mg k Oxyz k\r\nmg nope k O1\r\n"), b"HD Oxyz kk\r\nEN knope O1\r\n"
        )

    def test_opaqueTooLong(self) -> None:
        """
        An opaque token may be 32 bytes, its O included.
        """
        longest = b"O" + b"a" * 31
        self.assertEqual(self.send(b"mg k " + longest + b"\r\n"), b"HD " + longest + b"\r\n")
        self.assertEqual(
            self.send(b"mg k " + longest + b"a\r\nmg nope " + longest + b"a q\r\n"),
            b"CLIENT_ERROR opaque token too long\r\n" * 2,
        )

    def test_opaqueErrorAfterEffects(self) -> None:
        """
        The flags before a too-long opaque token have had their effect: here
        the item was created and touched, but no token was handed out.
        """
        tooLong = b"O" + b"a" * 32
        self.assertEqual(
            self.send(b"mg new N30 T60 " + tooLong + b"\r\n"), b"CLIENT_ERROR opaque token too long\r\n"
        )
        self.assertEqual(self.send(b"mg new t v\r\n"), b"VA 0 t60\r\n\r\n")

    def test_base64Key(self) -> None:
        """
        b decodes the key; k returns a binary key base64-encoded, with a b.
        """
        self.send(b"ms " + base64.b64encode(b"\x00bin") + b" 1 b\r\nx\r\n")
        self.assertEqual(
            self.send(b"mg AGJpbg== b k v\r\n"), b"VA 1 kAGJpbg== b\r\nx\r\n"
        )
        self.assertEqual(self.send(b"mg bm9wZQ== b k\r\n"), b"EN kbm9wZQ== b\r\n")
        self.assertEqual(self.send(b"mg b*m9wZQ== b k\r\n"), b"EN kbm9wZQ== b\r\n")

    def test_base64KeyOfTextItem(self) -> None:
        """
        Whether k answers in base64 depends on how the item was stored: an
        item stored under a text key comes back as text.
        """
        self.assertEqual(self.send(b"mg aw== b k\r\n"), b"HD kk\r\n")

    def test_binaryItemUnderTextKey(self) -> None:
        """
        An item stored with b comes back in base64 even when asked for by its
        decoded key.
        """
        self.send(b"ms YWJj 1 b\r\nx\r\n")
        self.assertEqual(self.send(b"mg abc k\r\nget abc\r\n"), b"HD kYWJj b\r\nVALUE abc 0 1\r\nx\r\nEND\r\n")

    def test_hitBefore(self) -> None:
        """
        h tells whether the item had been fetched before this request.
        """
        self.assertEqual(self.send(b"mg k h\r\nmg k h\r\n"), b"HD h0\r\nHD h1\r\n")

    def test_noBump(self) -> None:
        """
        u leaves the item as not fetched.
        """
        self.assertEqual(self.send(b"mg k u\r\nmg k h u\r\nmg k h\r\n"), b"HD\r\nHD h0\r\nHD h0\r\n")
        self.assertEqual(self.send(b"mg k h\r\n"), b"HD h1\r\n")

    def test_lastAccess(self) -> None:
        """
        l reports the seconds since the item was last accessed: its first
        fetch marks it fetched, later ones refresh the time.
        """
        self.clock.advance(5)
        self.assertEqual(self.send(b"mg k l\r\n"), b"HD l5\r\n")
        self.assertEqual(self.send(b"mg k l\r\n"), b"HD l5\r\n")
        self.assertEqual(self.send(b"mg k l\r\n"), b"HD l0\r\n")

    def test_touch(self) -> None:
        """
        T sets a new TTL; t before it reports the old one, after it the new.
        """
        self.assertEqual(self.send(b"mg k t T30\r\n"), b"HD t100\r\n")
        self.assertEqual(self.send(b"mg k T40 t\r\n"), b"HD t40\r\n")
        self.assertEqual(self.send(b"mg k T0 t\r\n"), b"HD t-1\r\n")

    def test_touchPastExpires(self) -> None:
        """
        A negative TTL expires the item; t shows memcached's wrapped count.
        """
        reply = self.send(b"mg k T-1 t\r\nmg k\r\n")
        self.assertRegex(reply, rb"^HD t42949\d+\r\nEN\r\n$")

    def test_vivify(self) -> None:
        """
        N creates an empty item on a miss and hands its creator the win (W);
        later requests see that a token went out (Z).
        """
        self.assertRegex(self.send(b"mg new N30 v t c\r\n"), rb"^VA 0 t30 c\d+ W\r\n\r\n$")
        self.assertEqual(self.send(b"mg new N30 v\r\n"), b"VA 0 Z\r\n\r\n")
        self.assertEqual(self.send(b"mg k N30 v\r\n"), b"VA 3\r\nabc\r\n")

    def test_vivifyWins(self) -> None:
        """
        The vivifying request's reply ends with W.
        """
        self.assertEqual(self.send(b"mg new N30\r\nmg new N30\r\nmg new\r\n"), b"HD W\r\nHD Z\r\nHD Z\r\n")

    def test_vivifiedBinaryKey(self) -> None:
        """
        An item created by N is not marked binary, so k returns the raw key.
        """
        self.assertEqual(self.send(b"mg AGE= b N30 k\r\n"), b"HD k\x00a W\r\n")

    def test_recache(self) -> None:
        """
        R hands out a win when the TTL left is below its token, once.
        """
        self.assertEqual(self.send(b"mg k R30\r\n"), b"HD\r\n")
        self.assertEqual(self.send(b"mg k R200 c\r\n")[-3:], b" W\r\n"[-3:])
        self.assertEqual(self.send(b"mg k R200\r\n"), b"HD Z\r\n")

    def test_recacheNeverForImmortal(self) -> None:
        """
        An item with no TTL never wins a recache, nor does R0 or R-1.
        """
        self.send(b"set forever 0 0 1\r\nx\r\n")
        self.assertEqual(self.send(b"mg forever R5000\r\nmg k R0\r\nmg k R-1\r\n"), b"HD\r\nHD\r\nHD\r\n")

    def test_recacheAfterTouch(self) -> None:
        """
        R looks at the TTL as the flags before it left it.
        """
        self.assertEqual(self.send(b"mg k T1000 R200\r\n"), b"HD\r\n")
        self.assertEqual(self.send(b"mg k R2000 T10\r\n"), b"HD W\r\n")

    def test_stale(self) -> None:
        """
        After md with I, mg reports X and hands one client the win.
        """
        self.send(b"md k I\r\n")
        self.assertEqual(self.send(b"mg k v\r\nmg k v\r\n"), b"VA 3 X W\r\nabc\r\nVA 3 Z X\r\nabc\r\n")

    def test_statsCount(self) -> None:
        """
        mg counts as a get, or with T as a touch.
        """
        self.send(b"mg k\r\nmg nope\r\nmg k T10\r\nmg nope T10\r\n")
        self.assertEqual(
            [self.stat(name) for name in ("cmd_get", "get_hits", "get_misses", "cmd_touch", "touch_hits")],
            [3, 1, 2, 1, 1],
        )

    def test_ignoredFlags(self) -> None:
        """
        P and L are ignored, as are flags meant for other commands.
        """
        self.assertEqual(self.send(b"mg k Pa/b Lc/ q I D5 J1 F1 C1 MX\r\n"), b"HD\r\n")


class MetaSetTests(MetaTestCase):
    """
    C{ms} and each of its flags and modes.
    """

    def test_setAndGet(self) -> None:
        """
        ms stores a value the classic get reads, with F's flags and T's TTL.
        """
        self.assertEqual(
            self.send(b"ms k 3 F5 T100\r\nabc\r\nget k\r\nmg k t\r\n"),
            b"HD\r\nVALUE k 5 3\r\nabc\r\nEND\r\nHD t100\r\n",
        )

    def test_quiet(self) -> None:
        """
        q hides only HD.
        """
        self.assertEqual(
            self.send(b"ms k 1 q\r\nx\r\nms k 1 q ME\r\ny\r\nms z 1 q MR\r\ny\r\nms k 1 q C99\r\ny\r\nmn\r\n"),
            b"NS\r\nNS\r\nEX\r\nMN\r\n",
        )

    def test_casKeyOpaque(self) -> None:
        """
        c returns the new CAS (0 when not stored), in flag order with k and O.
        """
        reply = self.send(b"ms k 1 O1 c k\r\nx\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(reply, b"HD O1 c%d kk\r\n" % (cas,))
        self.assertEqual(self.send(b"ms k 1 ME c\r\nx\r\n"), b"NS c0\r\n")

    def test_base64Key(self) -> None:
        """
        b stores under the decoded key, and k answers in base64.
        """
        self.assertEqual(self.send(b"ms YWJj 1 b k\r\nx\r\nget abc\r\n"), b"HD kYWJj b\r\nVALUE abc 0 1\r\nx\r\nEND\r\n")

    def test_modes(self) -> None:
        """
        M switches between set (S), add (E), replace (R), append (A) and
        prepend (P).
        """
        self.assertEqual(
            self.send(
                b"ms k 1 MR\r\na\r\nms k 1 ME\r\nb\r\nms k 1 ME\r\nc\r\nms k 1 MA\r\nd\r\n"
                b"ms k 1 MP\r\ne\r\nms k 1 MR\r\nf\r\nms k 1 MS\r\ng\r\nms z 1 MA\r\nh\r\nms z 1 MP\r\ni\r\n"
            ),
            b"NS\r\nHD\r\nNS\r\nHD\r\nHD\r\nHD\r\nHD\r\nNS\r\nNS\r\n",
        )

    def test_appendKeepsFlagsAndTtl(self) -> None:
        """
        Append and prepend keep the old item's flags and TTL.
        """
        self.send(b"ms k 1 F3 T100\r\nb\r\n")
        self.assertEqual(
            self.send(b"ms k 1 MA F9 T5\r\nc\r\nms k 1 MP\r\na\r\nmg k v f t\r\n"),
            b"HD\r\nHD\r\nVA 3 f3 t100\r\nabc\r\n",
        )

    def test_addTouchesNotFetches(self) -> None:
        """
        A refused add refreshes the item's access time but does not mark it
        fetched.
        """
        self.send(b"ms k 1\r\na\r\n")
        self.clock.advance(3)
        self.assertEqual(self.send(b"ms k 1 ME\r\nb\r\nmg k h l\r\n"), b"NS\r\nHD h0 l0\r\n")

    def test_invalidMode(self) -> None:
        """
        An unknown mode is refused and its data block swallowed.
        """
        self.assertEqual(
            self.send(b"ms k 1 MI\r\nx\r\nms k 1 Me\r\nx\r\nmn\r\n"),
            b"CLIENT_ERROR invalid mode for ms M token\r\n" * 2 + b"MN\r\n",
        )

    def test_compareCas(self) -> None:
        """
        C stores only over a matching CAS: EX otherwise, NF without an item.
        """
        self.send(b"ms k 1\r\na\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(
            self.send(
                b"ms k 1 C%d\r\nb\r\nms k 1 C%d\r\nc\r\nms z 1 C5\r\nd\r\nms k 1 C0\r\ne\r\n"
                % (cas + 1, cas)
            ),
            b"EX\r\nHD\r\nNF\r\nEX\r\n",
        )
        self.assertEqual(
            [self.stat(name) for name in ("cas_hits", "cas_badval", "cas_misses")], [1, 2, 1]
        )

    def test_compareCasModes(self) -> None:
        """
        With C, replace acts as cas; append and prepend check it; add
        ignores it.
        """
        self.send(b"ms k 1\r\nb\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(
            self.send(
                b"ms k 1 MA C%d\r\nx\r\nms k 1 MP C%d\r\na\r\nms z 1 MR C%d\r\nx\r\nms z 1 ME C99\r\nz\r\n"
                % (cas + 5, cas, cas)
            ),
            b"EX\r\nHD\r\nNF\r\nHD\r\n",
        )

    def test_invalidateWithOlderCas(self) -> None:
        """
        With I, an older CAS still stores, marking the item stale and keeping
        its TTL; a newer one does not.
        """
        self.send(b"ms k 1 T100\r\na\r\nms k 1 T100\r\na\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(
            self.send(b"ms k 1 I C%d T5\r\nb\r\nmg k v t\r\n" % (cas - 1,)),
            b"HD\r\nVA 1 t100 X W\r\nb\r\n",
        )
        newCas = self.casOf(b"k")
        self.assertEqual(self.send(b"ms k 1 I C%d\r\nc\r\n" % (newCas + 1,)), b"EX\r\n")
        self.assertEqual(self.send(b"ms k 1 I\r\nc\r\nmg k v\r\n"), b"HD\r\nVA 1\r\nc\r\n")

    def test_invalidateKeepsToken(self) -> None:
        """
        A stale store keeps the note that a recache token went out.
        """
        self.send(b"ms k 1\r\na\r\nmd k I\r\nmg k\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(self.send(b"ms k 1 I C%d\r\nb\r\nmg k\r\n" % (cas - 1,)), b"HD\r\nHD Z X\r\n")

    def test_tooLarge(self) -> None:
        """
        A value too large is refused, its data swallowed, and the old item
        dropped, whatever the mode.
        """
        self.send(b"ms k 1\r\na\r\n")
        size = 1024 * 1024
        self.assertEqual(
            self.send(b"ms k %d ME\r\n" % (size,) + b"x" * size + b"\r\nmg k\r\n"),
            b"SERVER_ERROR object too large for cache\r\nEN\r\n",
        )
        self.assertEqual(self.stat("store_too_large"), 1)

    def test_badDataChunk(self) -> None:
        """
        A data block without its CRLF is an error, even in quiet mode.
        """
        self.assertEqual(self.send(b"ms k 1 q\r\nab\r\nmg k\r\n"), b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEN\r\n")

    def test_badFlagSwallowsData(self) -> None:
        """
        An error in the flags still costs the data block.
        """
        self.assertEqual(
            self.send(b"ms k 3 Tx\r\nabc\r\nms k 3 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nabc\r\nmn\r\n"),
            b"CLIENT_ERROR bad token in command line format\r\nCLIENT_ERROR opaque token too long\r\nMN\r\n",
        )

    def test_modeErrorBeforeOpaqueError(self) -> None:
        """
        A bad mode is reported before a too-long opaque token.
        """
        self.assertEqual(
            self.send(b"ms k 1 " + b"O" * 33 + b" MZ\r\nx\r\n"),
            b"CLIENT_ERROR invalid mode for ms M token\r\n",
        )

    def test_badLengthKeepsData(self) -> None:
        """
        Errors found before the data length is known leave the data block to
        be read as a command.
        """
        self.assertEqual(
            self.send(b"ms k x\r\nmn\r\nms k -1\r\nmn\r\nms " + b"k" * 251 + b" 2\r\nmn\r\n"),
            b"CLIENT_ERROR bad command line format\r\nMN\r\n" * 3,
        )

    def test_ignoredFlags(self) -> None:
        """
        Flags that mean nothing to ms are accepted.
        """
        self.assertEqual(self.send(b"ms k 1 v s t f h l u N5 R5 J1 D1 Pp Lp\r\nx\r\n"), b"HD\r\n")

    def test_byteAtATime(self) -> None:
        """
        The line and data block may arrive a byte at a time.
        """
        data = b"ms k 3 c q\r\nabc\r\nms k 2 MA k\r\nde\r\nmg k v\r\n"
        out = b"".join(self.send(data[i : i + 1]) for i in range(len(data)))
        self.assertEqual(out, b"HD kk\r\nVA 5\r\nabcde\r\n")


class MetaDeleteTests(MetaTestCase):
    """
    C{md} and each of its flags.
    """

    def setUp(self) -> None:
        super().setUp()
        self.send(b"set k 0 100 1\r\na\r\n")

    def test_delete(self) -> None:
        """
        md removes the item: HD, then NF.
        """
        self.assertEqual(self.send(b"md k\r\nmd k\r\nget k\r\n"), b"HD\r\nNF\r\nEND\r\n")
        self.assertEqual([self.stat("delete_hits"), self.stat("delete_misses")], [1, 1])

    def test_quiet(self) -> None:
        """
        q hides HD only.
        """
        self.assertEqual(self.send(b"md k q\r\nmd k q\r\nmn\r\n"), b"NF\r\nMN\r\n")

    def test_keyOpaqueBase64(self) -> None:
        """
        k and O come back in order; b decodes the key and k re-encodes it.
        """
        self.assertEqual(self.send(b"md aw== b k O9\r\nmd k Ox k\r\n"), b"HD kaw== b O9\r\nNF Ox kk\r\n")

    def test_compareCas(self) -> None:
        """
        C deletes only on a matching CAS.
        """
        cas = self.casOf(b"k")
        self.assertEqual(
            self.send(b"md k C%d\r\nmd k C0 q\r\nmd k C%d\r\n" % (cas + 1, cas)), b"EX\r\nEX\r\nHD\r\n"
        )

    def test_invalidate(self) -> None:
        """
        I marks the item stale with a new CAS, and T then sets its TTL; T
        alone does nothing.
        """
        cas = self.casOf(b"k")
        self.assertEqual(self.send(b"md k T5\r\nmg k t\r\n"), b"HD\r\nEN\r\n")
        self.send(b"set k 0 100 1\r\na\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(self.send(b"md k I T30 q\r\nmg k t c\r\n"), b"HD t30 c%d X W\r\n" % (cas + 1,))

    def test_invalidateFreesToken(self) -> None:
        """
        Marking stale again lets the next client win again.
        """
        self.send(b"md k I\r\nmg k\r\nmg k\r\nmd k I\r\n")
        self.assertEqual(self.send(b"mg k\r\n"), b"HD X W\r\n")

    def test_setClearsStale(self) -> None:
        """
        Storing a new value ends staleness.
        """
        self.send(b"md k I\r\nset k 0 0 1\r\nb\r\n")
        self.assertEqual(self.send(b"mg k v\r\n"), b"VA 1\r\nb\r\n")


class MetaArithmeticTests(MetaTestCase):
    """
    C{ma} and each of its flags and modes.
    """

    def test_missing(self) -> None:
        """
        A missing counter is NF, even in quiet mode, with O and k.
        """
        self.assertEqual(self.send(b"ma n q O1 k\r\n"), b"NF O1 kn\r\n")
        self.assertEqual(self.stat("incr_misses"), 1)

    def test_incrementDecrement(self) -> None:
        """
        The default is to add one; D sets the delta; MD, M- decrement and
        stop at zero; MI, M+ increment and wrap.
        """
        self.send(b"set n 0 0 2\r\n10\r\n")
        self.assertEqual(
            self.send(b"ma n v\r\nma n v D5\r\nma n v MD D100\r\nma n v M+ D18446744073709551615\r\n"),
            b"VA 2\r\n11\r\nVA 2\r\n16\r\nVA 1\r\n0\r\nVA 20\r\n18446744073709551615\r\n",
        )
        self.assertEqual(self.send(b"ma n v MI\r\nma n v M- D1\r\n"), b"VA 1\r\n0\r\nVA 1\r\n0\r\n")

    def test_inPlacePadding(self) -> None:
        """
        A shorter result is written in place, padded with spaces.
        """
        self.send(b"set n 0 0 3\r\n100\r\n")
        self.assertEqual(self.send(b"ma n MD\r\n"), b"HD\r\n")
        self.assertEqual(self.send(b"get n\r\n"), b"VALUE n 0 3\r\n99 \r\nEND\r\n")

    def test_autoCreate(self) -> None:
        """
        N creates a missing counter from J (default 0), without applying
        the delta; q does not hide that reply.
        """
        self.assertEqual(
            self.send(b"ma a N0 J7 v q\r\nma b N0 v t\r\nma a v\r\n"),
            b"VA 1\r\n7\r\nVA 1 t-1\r\n0\r\nVA 1\r\n8\r\n",
        )
        self.assertEqual(self.send(b"ma c N30 t\r\n"), b"HD t30\r\n")

    def test_quiet(self) -> None:
        """
        q hides a successful reply, value and all.
        """
        self.send(b"set n 0 0 1\r\n1\r\n")
        self.assertEqual(self.send(b"ma n q v\r\nmn\r\nget n\r\n"), b"MN\r\nVALUE n 0 1\r\n2\r\nEND\r\n")

    def test_casAndTtl(self) -> None:
        """
        c returns the new CAS; t the TTL; T sets it (in flag order).
        """
        self.send(b"set n 0 100 2\r\n10\r\n")
        cas = self.casOf(b"n")
        self.assertEqual(self.send(b"ma n c t T30\r\n"), b"HD c%d t100\r\n" % (cas + 1,))
        self.assertEqual(self.casOf(b"n"), cas + 1)
        self.assertEqual(self.send(b"ma n T40 t\r\n"), b"HD t40\r\n")

    def test_compareCas(self) -> None:
        """
        C applies the delta only on a matching CAS; C0 means no check.
        """
        self.send(b"set n 0 0 2\r\n10\r\n")
        cas = self.casOf(b"n")
        self.assertEqual(
            self.send(b"ma n C%d q\r\nma n C%d v\r\nma n C0 v\r\n" % (cas + 1, cas)),
            b"EX\r\nVA 2\r\n11\r\nVA 2\r\n12\r\n",
        )

    def test_nonNumeric(self) -> None:
        """
        Values that are not numbers, and empty values, cannot be counted.
        """
        self.send(b"set n 0 0 1\r\nx\r\nset e 0 0 0\r\n\r\n")
        self.assertEqual(
            self.send(b"ma n\r\nma e q\r\n"),
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n" * 2,
        )

    def test_invalidMode(self) -> None:
        """
        Modes other than I, +, D and - are refused.
        """
        self.assertEqual(self.send(b"ma n MS\r\nma n Mi\r\n"), b"CLIENT_ERROR invalid mode for ma M token\r\n" * 2)

    def test_keyAndBase64(self) -> None:
        """
        k returns the key, re-encoded when b was given.
        """
        self.assertEqual(self.send(b"ma bg== b N0 k\r\nma n k\r\nma m k\r\n"), b"HD kbg== b\r\nHD kn\r\nNF km\r\n")

    def test_longerResultMakesNewItem(self) -> None:
        """
        A result too long for the old value makes a new item, and T then
        changes only the old copy: as in memcached, the TTL stays.
        """
        self.send(b"set n 0 0 2\r\n99\r\nmg n h\r\n")
        self.assertEqual(self.send(b"ma n T100 t v\r\nmg n t h v\r\n"), b"VA 3 t100\r\n100\r\nVA 3 t-1 h0\r\n100\r\n")

    def test_heldItemMakesNewItem(self) -> None:
        """
        An item an unsent mg reply still shows is not changed in place: its
        incremented value is a new item, not padded.  Replies sent (a new
        read, or after mn or get) free it.
        """
        self.send(b"set n 0 0 2\r\n10\r\n")
        self.assertEqual(self.send(b"mg n\r\nma n MD\r\nmg n v\r\n"), b"HD\r\nHD\r\nVA 1\r\n9\r\n")
        self.send(b"set n 0 0 2\r\n10\r\n")
        self.assertEqual(self.send(b"mg n\r\nmn\r\nma n MD\r\nmg n v\r\n"), b"HD\r\nMN\r\nHD\r\nVA 2\r\n9 \r\n")
        self.send(b"set n 0 0 2\r\n10\r\n")
        self.assertEqual(self.sendEach(b"mg n\r\n", b"decr n 1\r\nget n\r\n"), b"HD\r\n9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n")

    def test_replyWindowSize(self) -> None:
        """
        memcached writes its replies after the 21st command of a read, then
        after every 20th.
        """
        for fillers, value in ((19, b"9"), (20, b"9 ")):
            self.send(b"set n 0 0 2\r\n10\r\n")
            reply = self.send(b"mg n\r\n" + b"version\r\n" * fillers + b"decr n 1\r\nget n\r\n")
            self.assertTrue(reply.endswith(b"VALUE n 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)), reply)

    def test_ignoredFlags(self) -> None:
        """
        Flags with no meaning for ma are accepted.
        """
        self.send(b"set n 0 0 1\r\n1\r\n")
        self.assertEqual(self.send(b"ma n s f h l u R5 F1 I Pp Lp\r\n"), b"HD\r\n")


class MetaNoOpAndDebugTests(MetaTestCase):
    """
    C{mn} and C{me}.
    """

    def test_quietPipeline(self) -> None:
        """
        A pipeline of quiet requests ended by mn gets only the replies that
        matter, then MN.
        """
        self.send(b"set a 0 0 1\r\n1\r\n")
        self.assertEqual(
            self.send(b"mg a q v k\r\nmg b q v k\r\nms c 1 q\r\nx\r\nmd d q\r\nmn\r\n"),
            b"VA 1 ka\r\n1\r\nNF\r\nMN\r\n",
        )

    def test_debug(self) -> None:
        """
        me shows expiry, idle time, CAS, fetched, slab class and size,
        without counting as a fetch.
        """
        self.send(b"set k 5 100 3\r\nabc\r\n")
        cas = self.casOf(b"k")
        self.clock.advance(2)
        self.assertEqual(
            self.send(b"me k\r\nme k\r\n"),
            b"ME k exp=-98 la=2 cas=%d fetch=yes cls=1 size=67\r\n" % (cas,) * 2,
        )
        self.send(b"set big 0 0 500\r\n" + b"x" * 500 + b"\r\n")
        self.assertEqual(
            self.send(b"me big\r\nme nope\r\n"),
            b"ME big exp=-1 la=0 cas=%d fetch=no cls=9 size=562\r\nEN\r\n" % (cas + 1,),
        )
        self.assertEqual(self.stat("cmd_meta"), 4)

    def test_debugBinaryKey(self) -> None:
        """
        me b decodes the key; a binary item's key is shown in base64.
        """
        self.send(b"ms AAE= 1 b\r\nx\r\n")
        self.assertEqual(self.send(b"me AAE= b\r\n")[:16], b"ME AAE= exp=-1 l")

    def test_slabClass(self) -> None:
        """
        Item sizes map to memcached's default slab classes.
        """
        self.assertEqual(
            [slabClass(size) for size in (1, 96, 97, 120, 121, 394840, 394841, 1048576)],
            [1, 1, 2, 2, 3, 38, 39, 39],
        )
        self.assertEqual(len(SLAB_SIZES), 39)


class CrossCommandTests(MetaTestCase):
    """
    Meta and classic commands share one store and one item model.
    """

    def test_casShared(self) -> None:
        """
        mg's c and gets report the same CAS, and each accepts the other's.
        """
        self.send(b"set k 0 0 1\r\na\r\n")
        cas = self.casOf(b"k")
        self.assertEqual(self.send(b"mg k c\r\n"), b"HD c%d\r\n" % (cas,))
        self.assertEqual(self.send(b"cas k 0 0 1 %d\r\nb\r\n" % (cas,)), b"STORED\r\n")
        reply = self.send(b"ms k 1 c\r\nc\r\n")
        newCas = int(reply[4:-2])
        self.assertEqual(self.casOf(b"k"), newCas)
        self.assertEqual(self.send(b"cas k 0 0 1 %d\r\nd\r\n" % (newCas,)), b"STORED\r\n")

    def test_classicSeesMetaItems(self) -> None:
        """
        Items stored by ms are read, counted and deleted by classic commands,
        and the other way round.
        """
        self.assertEqual(
            self.send(
                b"ms n 1 F3\r\n5\r\nincr n 10\r\nget n\r\ndelete n\r\nmg n\r\n"
                b"set m 4 0 2\r\n10\r\nma m v\r\nget m\r\nmd m\r\nget m\r\n"
            ),
            b"HD\r\n15\r\nVALUE n 3 2\r\n15\r\nEND\r\nDELETED\r\nEN\r\n"
            b"STORED\r\nVA 2\r\n11\r\nVALUE m 4 2\r\n11\r\nEND\r\nHD\r\nEND\r\n",
        )

    def test_touchAndGat(self) -> None:
        """
        Classic touch and gat change what mg's t reports.
        """
        self.send(b"ms k 1 T100\r\na\r\n")
        self.assertEqual(self.send(b"touch k 50\r\nmg k t\r\ngat 20 k\r\nmg k t\r\n"), b"TOUCHED\r\nHD t50\r\nVALUE k 0 1\r\na\r\nEND\r\nHD t20\r\n")

    def test_classicAppendClearsStale(self) -> None:
        """
        A classic append makes a new item: no longer stale.
        """
        self.send(b"ms k 1\r\na\r\nmd k I\r\nappend k 0 0 1\r\nb\r\n")
        self.assertEqual(self.send(b"mg k v\r\n"), b"VA 2\r\nab\r\n")

    def test_expiredByClassicTime(self) -> None:
        """
        Items expire on the same clock for both: an ms TTL seen through get.
        """
        self.send(b"ms k 1 T10\r\na\r\n")
        self.clock.advance(10)
        self.assertEqual(self.send(b"get k\r\nmg k\r\n"), b"END\r\nEN\r\n")
