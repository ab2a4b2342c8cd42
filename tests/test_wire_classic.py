"""
Tests for L{myproto.wire.classic}: command lines in, typed requests (or the error
memcached gives) out.

memcached 1.6.18's C{proto_text.c} is the referee: every expectation here
was checked against a real memcached, through the reply it gives to the same
line.  Numbers are read by its C{safe_strtoul}/C{safe_strtol}/C{safe_strtoull}
helpers, which wrap C's C{strtoul}/C{strtol}/C{strtoull} on a 64-bit build:
leading whitespace and a sign are accepted, the digits may be followed by
whitespace (tokens are split on spaces only, so a tab stays in the token),
and the result is truncated to the C variable's width.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from myproto.errors import ClientError, CloseConnection, ProtocolError, UnknownCommand
from myproto.wire import classic
from myproto.wire.classic import (
    ArithmeticRequest,
    DeleteRequest,
    FlushRequest,
    LruCrawlerRequest,
    QuitRequest,
    RetrievalRequest,
    ShutdownRequest,
    StatsRequest,
    StorageRequest,
    TouchRequest,
    VerbosityRequest,
    VersionRequest,
    tokenize,
)
from myproto.wire.numbers import parseCounter
from myproto.wire.text import parseRequest

KEY_250 = b"k" * 250
KEY_251 = b"k" * 251


class ParseErrorAssertions(SynchronousTestCase):
    """
    Assertions about the errors L{parseRequest} raises.
    """

    def assertUnknown(self, line: bytes) -> None:
        """
        C{line} gets a plain C{ERROR}.
        """
        error = self.assertRaises(UnknownCommand, parseRequest, line)
        self.assertEqual(error.wire(), b"ERROR")

    def assertClientError(self, line: bytes, message: bytes, noreply: bool = False) -> None:
        """
        C{line} gets C{CLIENT_ERROR <message>}, silenced or not by
        C{noreply} as memcached decides.
        """
        error = self.assertRaises(ClientError, parseRequest, line)
        self.assertEqual(error.wire(), b"CLIENT_ERROR " + message)
        self.assertEqual(error.noreply, noreply)

    def assertBadFormat(self, line: bytes, noreply: bool = False) -> None:
        """
        C{line} gets C{CLIENT_ERROR bad command line format}.
        """
        self.assertClientError(line, classic.BAD_FORMAT, noreply)

    def assertCloses(self, line: bytes) -> None:
        """
        memcached hangs up on C{line} without a reply.
        """
        self.assertRaises(CloseConnection, parseRequest, line)

    def flagsOf(self, token: bytes) -> int:
        """
        @return: the flags a C{set} line with C{token} as its flags carries.
        """
        request = parseRequest(b"set k " + token + b" 0 1")
        self.assertIsInstance(request, StorageRequest)
        return request.flags

    def exptimeOf(self, token: bytes) -> int:
        """
        @return: the exptime a C{set} line with C{token} as its exptime
            carries.
        """
        request = parseRequest(b"set k 0 " + token + b" 1")
        self.assertIsInstance(request, StorageRequest)
        return request.exptime

    def sizeOf(self, token: bytes) -> int:
        """
        @return: the data block length a C{set} line with C{token} as its
            size announces.
        """
        request = parseRequest(b"set k 0 0 " + token)
        self.assertIsInstance(request, StorageRequest)
        return request.size

    def casOf(self, token: bytes) -> int:
        """
        @return: the CAS unique a C{cas} line with C{token} carries.
        """
        request = parseRequest(b"cas k 0 0 1 " + token)
        self.assertIsInstance(request, StorageRequest)
        return request.cas

    def deltaOf(self, token: bytes) -> int:
        """
        @return: the delta an C{incr} line with C{token} carries.
        """
        request = parseRequest(b"incr k " + token)
        self.assertIsInstance(request, ArithmeticRequest)
        return request.delta


class TokenizeTests(SynchronousTestCase):
    """
    L{tokenize} splits as memcached's C{tokenize_command}: on spaces only,
    counting at most 23 tokens plus a terminal one.
    """

    def test_spacesOnly(self) -> None:
        """
        Runs of spaces separate tokens; tabs and other whitespace do not.
        """
        self.assertEqual(tokenize(b"  get\ta  b\x0bc  "), ([b"get\ta", b"b\x0bc"], 3))

    def test_empty(self) -> None:
        """
        An empty line has no tokens, only the terminal one.
        """
        self.assertEqual(tokenize(b""), ([], 1))
        self.assertEqual(tokenize(b"   "), ([], 1))

    def test_countIsCapped(self) -> None:
        """
        memcached counts at most 23 tokens, then its terminal token, however
        long the line; all the tokens are still returned.
        """
        line = b" ".join(b"t%d" % (i,) for i in range(30))
        tokens, count = tokenize(line)
        self.assertEqual(len(tokens), 30)
        self.assertEqual(count, 24)

    def test_twentyThreeTokens(self) -> None:
        """
        Exactly 23 tokens, with or without a trailing space, count 24.
        """
        line = b" ".join(b"t%d" % (i,) for i in range(23))
        self.assertEqual(tokenize(line)[1], 24)
        self.assertEqual(tokenize(line + b" ")[1], 24)
        self.assertEqual(tokenize(b" ".join(b"t%d" % (i,) for i in range(22)))[1], 23)


class StorageParsingTests(ParseErrorAssertions):
    """
    C{set}, C{add}, C{replace}, C{append}, C{prepend} and C{cas} lines.
    """

    def test_everyVerb(self) -> None:
        """
        Each storage verb parses into a L{StorageRequest} carrying its
        arguments; only C{cas} reads a CAS unique.
        """
        for verb in (b"set", b"add", b"replace", b"append", b"prepend"):
            self.assertEqual(
                parseRequest(verb + b" key 5 100 3"),
                StorageRequest(verb, b"key", 5, 100, 3, 0, False),
            )
        self.assertEqual(
            parseRequest(b"cas key 5 100 3 77"),
            StorageRequest(b"cas", b"key", 5, 100, 3, 77, False),
        )

    def test_noreply(self) -> None:
        """
        A last token of exactly C{noreply} sets C{noreply}; anything else in
        that place is ignored.
        """
        self.assertTrue(parseRequest(b"set k 0 0 1 noreply").noreply)  # type: ignore[union-attr]
        self.assertTrue(parseRequest(b"cas k 0 0 1 9 noreply").noreply)  # type: ignore[union-attr]
        self.assertFalse(parseRequest(b"set k 0 0 1 NOREPLY").noreply)  # type: ignore[union-attr]
        self.assertFalse(parseRequest(b"set k 0 0 1 junk").noreply)  # type: ignore[union-attr]
        self.assertFalse(parseRequest(b"cas k 0 0 1 9 junk").noreply)  # type: ignore[union-attr]

    def test_arity(self) -> None:
        """
        Too few or too many arguments is an unknown command, whatever the
        arguments say.
        """
        for verb in (b"set", b"add", b"replace", b"append", b"prepend"):
            self.assertUnknown(verb)
            self.assertUnknown(verb + b" k")
            self.assertUnknown(verb + b" k 0 0")
            self.assertUnknown(verb + b" k 0 0 1 noreply extra")
            self.assertUnknown(verb + b" k 0 0 1 2 3")
        self.assertUnknown(b"cas k 0 0 1")
        self.assertUnknown(b"cas k 0 0 1 1 noreply extra")

    def test_tooManyTokens(self) -> None:
        """
        A storage line with 24 or more tokens is an unknown command.
        """
        self.assertUnknown(b"set k 0 0 1 " + b" ".join([b"x"] * 19))

    def test_keyLength(self) -> None:
        """
        A 250-byte key is fine; a 251-byte one is a format error, silenced
        by C{noreply}.
        """
        self.assertEqual(parseRequest(b"set " + KEY_250 + b" 0 0 1").key, KEY_250)  # type: ignore[union-attr]
        self.assertBadFormat(b"set " + KEY_251 + b" 0 0 1")
        self.assertBadFormat(b"add " + KEY_251 + b" 0 0 1 noreply", noreply=True)
        self.assertBadFormat(b"cas " + KEY_251 + b" 0 0 1 1")

    def test_flagsSigns(self) -> None:
        """
        Flags may have a plus sign, and C{-0} is zero; any other negative
        number is refused.
        """
        self.assertEqual(self.flagsOf(b"+5"), 5)
        self.assertEqual(self.flagsOf(b"-0"), 0)
        self.assertEqual(self.flagsOf(b"00"), 0)
        self.assertBadFormat(b"set k -1 0 1")
        self.assertBadFormat(b"set k -5 0 1 noreply", noreply=True)
        self.assertBadFormat(b"set k +-5 0 1")

    def test_flagsWhitespace(self) -> None:
        """
        Tokens are split on spaces only: whitespace before the digits is
        skipped and whitespace after them ends the number, so C{"5\\tx"}
        is 5.
        """
        self.assertEqual(self.flagsOf(b"5\tx"), 5)
        self.assertEqual(self.flagsOf(b"\t5"), 5)
        self.assertEqual(self.flagsOf(b"5\x0b"), 5)
        self.assertBadFormat(b"set k 5x 0 1")

    def test_flagsNotDecimal(self) -> None:
        """
        Hexadecimal, fractions and words are format errors.
        """
        self.assertBadFormat(b"set k 0x1 0 1")
        self.assertBadFormat(b"set k 1.5 0 1")
        self.assertBadFormat(b"set k abc 0 1")
        self.assertBadFormat(b"set k \t 0 1")

    def test_flagsTruncatedTo32Bits(self) -> None:
        """
        Flags are parsed as a 64-bit unsigned long and kept modulo 2**32, as
        the C assignment to a 32-bit variable does.
        """
        self.assertEqual(self.flagsOf(b"4294967295"), 2**32 - 1)
        self.assertEqual(self.flagsOf(b"4294967296"), 0)
        self.assertEqual(self.flagsOf(b"4294967297"), 1)
        self.assertEqual(self.flagsOf(b"18446744073709551615"), 2**32 - 1)

    def test_flagsOverflow(self) -> None:
        """
        Flags of 2**64 or more overflow C{strtoul}: a format error.
        """
        self.assertBadFormat(b"set k 18446744073709551616 0 1")
        self.assertBadFormat(b"set k 99999999999999999999999 0 1")

    def test_flagsNegativeWrapping(self) -> None:
        """
        C{strtoul} negates modulo 2**64; memcached refuses the result only
        when it then looks negative as a signed number, so a large enough
        negative number comes through.
        """
        self.assertEqual(self.flagsOf(b"-9223372036854775809"), 2**32 - 1)
        self.assertBadFormat(b"set k -9223372036854775808 0 1")

    def test_exptime(self) -> None:
        """
        Exptimes are signed, with an optional plus sign.
        """
        self.assertEqual(self.exptimeOf(b"0"), 0)
        self.assertEqual(self.exptimeOf(b"-1"), -1)
        self.assertEqual(self.exptimeOf(b"+10"), 10)
        self.assertEqual(self.exptimeOf(b"2592000"), 2592000)
        self.assertEqual(self.exptimeOf(b"10\tx"), 10)
        self.assertBadFormat(b"set k 0 ten 1")
        self.assertBadFormat(b"set k 0 1.5 1")

    def test_exptimeTruncatedTo32Bits(self) -> None:
        """
        An exptime is parsed as a 64-bit long and truncated to a 32-bit int.
        """
        self.assertEqual(self.exptimeOf(b"4294967296"), 0)
        self.assertEqual(self.exptimeOf(b"4294967306"), 10)
        self.assertEqual(self.exptimeOf(b"4294967295"), -1)
        self.assertEqual(self.exptimeOf(b"2147483648"), -(2**31))
        self.assertEqual(self.exptimeOf(b"-9223372036854775808"), 0)

    def test_exptimeOverflow(self) -> None:
        """
        An exptime outside a 64-bit long is a format error.
        """
        self.assertBadFormat(b"set k 0 9223372036854775808 1")
        self.assertBadFormat(b"set k 0 -9223372036854775809 1")

    def test_size(self) -> None:
        """
        The data block length is a non-negative C int of at most
        C{INT_MAX - 2}.
        """
        self.assertEqual(self.sizeOf(b"0"), 0)
        self.assertEqual(self.sizeOf(b"+3"), 3)
        self.assertEqual(self.sizeOf(b"1\tzz"), 1)
        self.assertEqual(self.sizeOf(b"2147483645"), 2**31 - 3)
        self.assertBadFormat(b"set k 0 0 2147483646")
        self.assertBadFormat(b"set k 0 0 2147483647")
        self.assertBadFormat(b"set k 0 0 -1")
        self.assertBadFormat(b"set k 0 0 -1 noreply", noreply=True)
        self.assertBadFormat(b"set k 0 0 1.0")

    def test_sizeTruncatedTo32Bits(self) -> None:
        """
        A length beyond 32 bits is truncated first, then checked: 2**32 + 1
        is a one-byte block, 2**32 - 1 is -1 and refused.
        """
        self.assertEqual(self.sizeOf(b"4294967297"), 1)
        self.assertEqual(self.sizeOf(b"5000000000"), 5000000000 - 2**32)
        self.assertBadFormat(b"set k 0 0 4294967295")
        self.assertBadFormat(b"set k 0 0 9223372036854775808")

    def test_casUnique(self) -> None:
        """
        A CAS unique is an unsigned 64-bit number.
        """
        self.assertEqual(self.casOf(b"0"), 0)
        self.assertEqual(self.casOf(b"+9"), 9)
        self.assertEqual(self.casOf(b"18446744073709551615"), 2**64 - 1)
        self.assertEqual(self.casOf(b"9\tx"), 9)
        self.assertBadFormat(b"cas k 0 0 1 18446744073709551616")
        self.assertBadFormat(b"cas k 0 0 1 -1")
        self.assertBadFormat(b"cas k 0 0 1 abc")
        self.assertBadFormat(b"cas k 0 0 1 abc noreply", noreply=True)

    def test_casNegativeWrapping(self) -> None:
        """
        As C{strtoull} does, C{-N} is 2**64 - N, refused only when that is
        2**63 or more.
        """
        self.assertEqual(self.casOf(b"-18446744073709551615"), 1)
        self.assertEqual(self.casOf(b"-9223372036854775809"), 2**63 - 1)
        self.assertBadFormat(b"cas k 0 0 1 -9223372036854775808")
        self.assertBadFormat(b"cas k 0 0 1 -18446744073709551616")

    def test_errorOrder(self) -> None:
        """
        The key is checked before the numbers, and a bad CAS unique is found
        before a bad size: each gives the same format error.
        """
        self.assertBadFormat(b"set " + KEY_251 + b" x x x")
        self.assertBadFormat(b"cas k 0 0 -1 x")


class RetrievalParsingTests(ParseErrorAssertions):
    """
    C{get}, C{gets}, C{gat}, C{gats} and the ancient C{bget}.
    """

    def test_get(self) -> None:
        """
        C{get} takes any number of keys, in order, duplicates kept.
        """
        self.assertEqual(
            parseRequest(b"get a b a"), RetrievalRequest((b"a", b"b", b"a"), False, None)
        )
        self.assertEqual(parseRequest(b"gets a"), RetrievalRequest((b"a",), True, None))
        self.assertEqual(parseRequest(b"bget a"), RetrievalRequest((b"a",), False, None))

    def test_manyKeys(self) -> None:
        """
        Keys beyond memcached's 24 tokens are all kept: memcached reads the
        rest of the line in further batches.
        """
        keys = tuple(b"key%d" % (i,) for i in range(100))
        request = parseRequest(b"get " + b" ".join(keys))
        self.assertIsInstance(request, RetrievalRequest)
        self.assertEqual(request.keys, keys)

    def test_noreplyIsAKey(self) -> None:
        """
        Retrievals take no C{noreply}: it is just another key.
        """
        request = parseRequest(b"get a noreply")
        self.assertIsInstance(request, RetrievalRequest)
        self.assertEqual(request.keys, (b"a", b"noreply"))

    def test_spaces(self) -> None:
        """
        Extra spaces around and between keys are ignored.
        """
        request = parseRequest(b"  get   a  b  ")
        self.assertIsInstance(request, RetrievalRequest)
        self.assertEqual(request.keys, (b"a", b"b"))

    def test_noKeys(self) -> None:
        """
        A retrieval without keys is an unknown command.
        """
        for verb in (b"get", b"gets", b"gat", b"gats", b"bget"):
            self.assertUnknown(verb)
            self.assertUnknown(verb + b"   ")

    def test_gat(self) -> None:
        """
        C{gat} and C{gats} read an exptime first, then the keys; with no key
        after the exptime they are valid and find nothing.
        """
        self.assertEqual(parseRequest(b"gat 10 a b"), RetrievalRequest((b"a", b"b"), False, 10))
        self.assertEqual(parseRequest(b"gats -1 a"), RetrievalRequest((b"a",), True, -1))
        self.assertEqual(parseRequest(b"gat 10"), RetrievalRequest((), False, 10))
        self.assertEqual(parseRequest(b"gat 4294967306 a").touchExptime, 10)  # type: ignore[union-attr]

    def test_gatBadExptime(self) -> None:
        """
        A C{gat} exptime that is not a number is C{invalid exptime argument}.
        """
        self.assertClientError(b"gat abc a", classic.BAD_EXPTIME)
        self.assertClientError(b"gats 1.5 a", classic.BAD_EXPTIME)
        self.assertClientError(b"gat 9223372036854775808 a", classic.BAD_EXPTIME)

    def test_longKeyIsNotAParseError(self) -> None:
        """
        memcached looks up the keys before a too-long one, so a long key is
        not refused by the parser; it is still handed over unchanged.
        """
        request = parseRequest(b"get a " + KEY_251)
        self.assertIsInstance(request, RetrievalRequest)
        self.assertEqual(request.keys, (b"a", KEY_251))

    def test_caseSensitive(self) -> None:
        """
        Verbs are lower case: C{GET} is unknown.
        """
        self.assertUnknown(b"GET a")
        self.assertUnknown(b"Get a")


class DeleteParsingTests(ParseErrorAssertions):
    """
    C{delete <key> [0] [noreply]}.
    """

    def test_delete(self) -> None:
        """
        The key alone, the legacy hold time C{0}, C{noreply}, or both.
        """
        self.assertEqual(parseRequest(b"delete k"), DeleteRequest(b"k", False))
        self.assertEqual(parseRequest(b"delete k 0"), DeleteRequest(b"k", False))
        self.assertEqual(parseRequest(b"delete k noreply"), DeleteRequest(b"k", True))
        self.assertEqual(parseRequest(b"delete k 0 noreply"), DeleteRequest(b"k", True))

    def test_nonzeroHoldTime(self) -> None:
        """
        Any hold time but C{0} gets the usage message, silenced by
        C{noreply}.
        """
        self.assertClientError(b"delete k 1", classic.BAD_DELETE)
        self.assertClientError(b"delete k 00", classic.BAD_DELETE)
        self.assertClientError(b"delete k 0 0", classic.BAD_DELETE)
        self.assertClientError(b"delete k 1 noreply", classic.BAD_DELETE, noreply=True)
        self.assertClientError(b"delete k noreply 0", classic.BAD_DELETE)

    def test_usageText(self) -> None:
        """
        The usage message has memcached's two spaces.
        """
        error = self.assertRaises(ClientError, parseRequest, b"delete k 1")
        self.assertEqual(
            error.wire(),
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
        )

    def test_arity(self) -> None:
        """
        C{delete} alone, or with more than four tokens, is unknown.
        """
        self.assertUnknown(b"delete")
        self.assertUnknown(b"delete k 0 noreply x")
        self.assertUnknown(b"delete k x y z")

    def test_keyLength(self) -> None:
        """
        A 251-byte key is a format error, silenced by C{noreply}.
        """
        self.assertEqual(parseRequest(b"delete " + KEY_250), DeleteRequest(KEY_250, False))
        self.assertBadFormat(b"delete " + KEY_251)
        self.assertBadFormat(b"delete " + KEY_251 + b" noreply", noreply=True)


class ArithmeticParsingTests(ParseErrorAssertions):
    """
    C{incr}/C{decr <key> <delta> [noreply]}.
    """

    def test_incrDecr(self) -> None:
        """
        Both verbs parse into an L{ArithmeticRequest}.
        """
        self.assertEqual(parseRequest(b"incr k 5"), ArithmeticRequest(b"k", 5, True, False))
        self.assertEqual(parseRequest(b"decr k 5 noreply"), ArithmeticRequest(b"k", 5, False, True))
        self.assertEqual(parseRequest(b"incr k 5 junk"), ArithmeticRequest(b"k", 5, True, False))

    def test_delta(self) -> None:
        """
        The delta is an unsigned 64-bit number read by C{strtoull}.
        """
        self.assertEqual(self.deltaOf(b"0"), 0)
        self.assertEqual(self.deltaOf(b"+1"), 1)
        self.assertEqual(self.deltaOf(b"-0"), 0)
        self.assertEqual(self.deltaOf(b"1\tx"), 1)
        self.assertEqual(self.deltaOf(b"18446744073709551615"), 2**64 - 1)
        self.assertEqual(self.deltaOf(b"-18446744073709551615"), 1)

    def test_badDelta(self) -> None:
        """
        Negative, overflowing or non-numeric deltas are
        C{invalid numeric delta argument}, silenced by C{noreply}.
        """
        for token in (b"-1", b"18446744073709551616", b"abc", b"1.5", b"0x1", b"1x"):
            self.assertClientError(b"incr k " + token, classic.BAD_DELTA)
            self.assertClientError(b"decr k " + token, classic.BAD_DELTA)
        self.assertClientError(b"incr k abc noreply", classic.BAD_DELTA, noreply=True)

    def test_arity(self) -> None:
        """
        Missing delta or extra arguments: unknown command.
        """
        for verb in (b"incr", b"decr"):
            self.assertUnknown(verb)
            self.assertUnknown(verb + b" k")
            self.assertUnknown(verb + b" k 1 noreply x")

    def test_keyLength(self) -> None:
        """
        A 251-byte key is a format error, checked before the delta.
        """
        self.assertBadFormat(b"incr " + KEY_251 + b" 1")
        self.assertBadFormat(b"decr " + KEY_251 + b" x")
        self.assertBadFormat(b"incr " + KEY_251 + b" 1 noreply", noreply=True)


class TouchParsingTests(ParseErrorAssertions):
    """
    C{touch <key> <exptime> [noreply]}.
    """

    def test_touch(self) -> None:
        """
        Key and exptime, and C{noreply}.
        """
        self.assertEqual(parseRequest(b"touch k 10"), TouchRequest(b"k", 10, False))
        self.assertEqual(parseRequest(b"touch k -1 noreply"), TouchRequest(b"k", -1, True))
        self.assertEqual(parseRequest(b"touch k 4294967306"), TouchRequest(b"k", 10, False))

    def test_badExptime(self) -> None:
        """
        A non-numeric exptime is C{invalid exptime argument}.
        """
        self.assertClientError(b"touch k abc", classic.BAD_EXPTIME)
        self.assertClientError(b"touch k 1.5", classic.BAD_EXPTIME)
        self.assertClientError(b"touch k abc noreply", classic.BAD_EXPTIME, noreply=True)

    def test_arity(self) -> None:
        """
        Wrong argument counts are unknown commands.
        """
        self.assertUnknown(b"touch")
        self.assertUnknown(b"touch k")
        self.assertUnknown(b"touch k 1 noreply x")

    def test_keyLength(self) -> None:
        """
        A 251-byte key is a format error.
        """
        self.assertBadFormat(b"touch " + KEY_251 + b" 1")


class FlushParsingTests(ParseErrorAssertions):
    """
    C{flush_all [delay] [noreply]}.
    """

    def test_flush(self) -> None:
        """
        An optional delay and an optional C{noreply}.
        """
        self.assertEqual(parseRequest(b"flush_all"), FlushRequest(0, False))
        self.assertEqual(parseRequest(b"flush_all 10"), FlushRequest(10, False))
        self.assertEqual(parseRequest(b"flush_all noreply"), FlushRequest(0, True))
        self.assertEqual(parseRequest(b"flush_all 10 noreply"), FlushRequest(10, True))
        self.assertEqual(parseRequest(b"flush_all -1"), FlushRequest(-1, False))
        self.assertEqual(parseRequest(b"flush_all 10 junk"), FlushRequest(10, False))
        self.assertEqual(parseRequest(b"flush_all 4294967296"), FlushRequest(0, False))

    def test_badDelay(self) -> None:
        """
        A delay that is not a number parses to a request without one: the
        command counts it in C{cmd_flush} before refusing it with C{invalid
        exptime argument}.
        """
        self.assertEqual(parseRequest(b"flush_all abc"), FlushRequest(None, False))
        self.assertEqual(parseRequest(b"flush_all abc noreply"), FlushRequest(None, True))
        self.assertEqual(parseRequest(b"flush_all 9223372036854775808"), FlushRequest(None, False))

    def test_arity(self) -> None:
        """
        More than two arguments is an unknown command.
        """
        self.assertUnknown(b"flush_all 1 2 3")


class OtherCommandParsingTests(ParseErrorAssertions):
    """
    C{version}, C{verbosity}, C{quit}, C{shutdown}, C{stats}.
    """

    def test_version(self) -> None:
        """
        C{version} ignores any arguments.
        """
        self.assertEqual(parseRequest(b"version"), VersionRequest())
        self.assertEqual(parseRequest(b"version x y"), VersionRequest())

    def test_quit(self) -> None:
        """
        C{quit} ignores any arguments.
        """
        self.assertEqual(parseRequest(b"quit"), QuitRequest())
        self.assertEqual(parseRequest(b"quit now"), QuitRequest())

    def test_verbosity(self) -> None:
        """
        C{verbosity <level> [noreply]}; the level is an unsigned 32-bit
        number.
        """
        self.assertEqual(parseRequest(b"verbosity 1"), VerbosityRequest(1, False))
        self.assertEqual(parseRequest(b"verbosity 1 noreply"), VerbosityRequest(1, True))
        self.assertEqual(parseRequest(b"verbosity 1 2"), VerbosityRequest(1, False))
        self.assertEqual(parseRequest(b"verbosity 4294967296"), VerbosityRequest(0, False))

    def test_verbosityErrors(self) -> None:
        """
        A missing level or extra arguments are unknown; a bad level is a
        format error.
        """
        self.assertUnknown(b"verbosity")
        self.assertUnknown(b"verbosity 0 1 2")
        self.assertBadFormat(b"verbosity abc")
        self.assertBadFormat(b"verbosity -1")
        self.assertBadFormat(b"verbosity abc noreply", noreply=True)

    def test_shutdown(self) -> None:
        """
        C{shutdown} alone, with one mode word, or (invalidly) more.
        """
        self.assertEqual(parseRequest(b"shutdown"), ShutdownRequest(None))
        self.assertEqual(parseRequest(b"shutdown graceful"), ShutdownRequest(b"graceful"))
        foo = parseRequest(b"shutdown foo")
        self.assertIsInstance(foo, ShutdownRequest)
        self.assertNotIn(foo.mode, (None, b"graceful"))  # type: ignore[union-attr]
        many = parseRequest(b"shutdown graceful now")
        self.assertIsInstance(many, ShutdownRequest)
        self.assertNotIn(many.mode, (None, b"graceful"))  # type: ignore[union-attr]

    def test_stats(self) -> None:
        """
        C{stats} keeps its arguments.
        """
        self.assertEqual(parseRequest(b"stats"), StatsRequest(()))
        self.assertEqual(parseRequest(b"stats settings"), StatsRequest((b"settings",)))
        self.assertEqual(parseRequest(b"stats detail on"), StatsRequest((b"detail", b"on")))


class UnknownCommandTests(ParseErrorAssertions):
    """
    Lines memcached answers with C{ERROR}.
    """

    def test_empty(self) -> None:
        """
        An empty line, a blank one, or a lone carriage return.
        """
        self.assertUnknown(b"")
        self.assertUnknown(b"   ")
        self.assertUnknown(b"\r")

    def test_oneCharacter(self) -> None:
        """
        No command is shorter than two bytes.
        """
        self.assertUnknown(b"a")
        self.assertUnknown(b"g k")

    def test_unknownVerbs(self) -> None:
        """
        Words memcached does not know, and known ones with a tab glued on.
        """
        self.assertUnknown(b"foo")
        self.assertUnknown(b"foo bar")
        self.assertUnknown(b"get\tk")
        self.assertUnknown(b"sets k 0 0 1")
        self.assertUnknown(b"SET k 0 0 1")


class NulTests(SynchronousTestCase):
    """
    memcached parses the line as a C string, so it ends at the first NUL.
    """

    def test_getStopsAtNul(self) -> None:
        """
        Keys after a NUL are not seen.
        """
        self.assertEqual(parseRequest(b"get a\x00b c"), RetrievalRequest((b"a",), False, None))

    def test_setStopsAtNul(self) -> None:
        """
        Junk after a NUL does not count as an argument.
        """
        self.assertEqual(
            parseRequest(b"set k 0 0 1\x00junk more"),
            StorageRequest(b"set", b"k", 0, 0, 1, 0, False),
        )

    def test_nulFirst(self) -> None:
        """
        A line starting with NUL is empty.
        """
        self.assertRaises(UnknownCommand, parseRequest, b"\x00get k")


class TrailingCarriageReturnTests(SynchronousTestCase):
    """
    Only one CR before the LF is part of the line ending; a second one is
    whitespace that C{strtol} stops at.
    """

    def test_sizeWithCarriageReturn(self) -> None:
        """
        C{set k 0 0 5\\r} announces five bytes.
        """
        self.assertEqual(parseRequest(b"set k 0 0 5\r").size, 5)  # type: ignore[union-attr]


class HTTPCloseTests(ParseErrorAssertions):
    """
    memcached drops a connection whose line looks like an HTTP request, but
    only in the last branch of its dispatcher: a line whose verb starts with
    C{g s a c i d t} (or is a two-letter C{m} word), or is one of the verbs
    it tests before that branch, never gets there.
    """

    def test_httpRequests(self) -> None:
        """
        Request lines whose last token starts with C{HTTP/} close.
        """
        self.assertCloses(b"GET / HTTP/1.1")
        self.assertCloses(b"POST /x HTTP/1.0")
        self.assertCloses(b"HEAD / HTTP/2")
        self.assertCloses(b"xy HTTP/1.1")
        self.assertCloses(b"HTTP/1.1")
        self.assertCloses(b"foo bar HTTP/")
        self.assertCloses(b"mex HTTP/1.1")

    def test_onlyTheLastToken(self) -> None:
        """
        C{HTTP/} counts only as the last token memcached tokenized, and only
        in upper case.
        """
        self.assertUnknown(b"foo HTTP/1.1 bar")
        self.assertUnknown(b"foo http/1.1")
        self.assertUnknown(b"foo HTTP")
        self.assertUnknown(b"zz HTTP/1.1 noreply")

    def test_tokenLimit(self) -> None:
        """
        On a long line, memcached's last counted token is the 23rd.
        """
        letters = b" ".join(bytes([c]) for c in b"abcdefghijklmnopqrstu")
        self.assertCloses(b"GET " + letters + b" HTTP/1.1 w x y")
        self.assertUnknown(b"GET " + letters + b" v w x HTTP/1.1")

    def test_shortVerb(self) -> None:
        """
        A one-byte verb is an unknown command before anything else.
        """
        self.assertUnknown(b"x HTTP/1.1")

    def test_earlyBranches(self) -> None:
        """
        Unknown verbs starting with a letter memcached dispatches on early
        are C{ERROR}, however they end.
        """
        for verb in (b"gx", b"sx", b"ax", b"cx", b"ix", b"dx", b"tx", b"mz"):
            self.assertUnknown(verb + b" / HTTP/1.1")

    def test_knownVerbs(self) -> None:
        """
        Known verbs are handled as themselves.
        """
        self.assertIsInstance(parseRequest(b"get / HTTP/1.1"), RetrievalRequest)
        self.assertIsInstance(parseRequest(b"bget HTTP/1.1"), RetrievalRequest)
        self.assertIsInstance(parseRequest(b"version HTTP/1.1"), VersionRequest)
        self.assertIsInstance(parseRequest(b"quit HTTP/1.1"), QuitRequest)
        self.assertIsInstance(parseRequest(b"stats HTTP/1.1"), StatsRequest)
        self.assertUnknown(b"replace HTTP/1.1")
        self.assertUnknown(b"prepend a HTTP/1.1")
        self.assertEqual(parseRequest(b"flush_all HTTP/1.1"), FlushRequest(None, False))
        self.assertBadFormat(b"verbosity HTTP/1.1")

    def test_lruCrawler(self) -> None:
        """
        memcached recognises C{lru_crawler} before its HTTP check: the
        arguments are left to the crawler (which answers C{ERROR} to one it
        does not understand) and the connection stays open.
        """
        self.assertEqual(
            parseRequest(b"lru_crawler HTTP/1.1"), LruCrawlerRequest((b"HTTP/1.1",))
        )

    def test_lru(self) -> None:
        """
        memcached recognises C{lru} before its HTTP check (and its command
        answers C{ERROR}: L{myproto.commands.tuning.lru}).
        """
        from myproto.wire.tuning import LruRequest

        self.assertEqual(parseRequest(b"lru HTTP/1.1"), LruRequest((b"HTTP/1.1",), False))

    def test_watch(self) -> None:
        """
        memcached recognises C{watch} before its HTTP check; an unknown watch
        type gets C{ERROR}.
        """
        self.assertUnknown(b"watch HTTP/1.1")


class CounterTests(SynchronousTestCase):
    """
    L{parseCounter} reads a stored value as C{incr}/C{decr} do, with
    C{safe_strtoull}.
    """

    def test_numbers(self) -> None:
        """
        Decimal numbers up to 2**64 - 1, leading zeros and a plus sign
        allowed.
        """
        self.assertEqual(parseCounter(b"0"), 0)
        self.assertEqual(parseCounter(b"42"), 42)
        self.assertEqual(parseCounter(b"00012"), 12)
        self.assertEqual(parseCounter(b"+5"), 5)
        self.assertEqual(parseCounter(b"-0"), 0)
        self.assertEqual(parseCounter(b"18446744073709551615"), 2**64 - 1)

    def test_whitespace(self) -> None:
        """
        Leading whitespace is skipped; whitespace (the padding an in-place
        C{incr} leaves, or an embedded CRLF) or NUL ends the number.
        """
        self.assertEqual(parseCounter(b" 5"), 5)
        self.assertEqual(parseCounter(b"\t7"), 7)
        self.assertEqual(parseCounter(b"9   "), 9)
        self.assertEqual(parseCounter(b"5 abc"), 5)
        self.assertEqual(parseCounter(b"5\r\nxx"), 5)
        self.assertEqual(parseCounter(b"5\x00"), 5)

    def test_notNumbers(self) -> None:
        """
        Empty values, words, trailing junk, negatives and overflows are not
        counters.
        """
        for value in (b"", b" ", b"abc", b"5abc", b"-1", b"0x10", b"1.5", b"18446744073709551616"):
            self.assertIsNone(parseCounter(value), value)

    def test_negativeWrapping(self) -> None:
        """
        As C{strtoull} does, a minus sign negates modulo 2**64, and the
        result is refused only when it looks negative as a signed number.
        """
        self.assertEqual(parseCounter(b"-18446744073709551615"), 1)
        self.assertIsNone(parseCounter(b"-9223372036854775808"))


class ErrorRenderingTests(SynchronousTestCase):
    """
    Each error renders memcached's line.
    """

    def test_lines(self) -> None:
        """
        The prefixes and messages join with one space; a bare error has no
        trailing space.
        """
        self.assertEqual(UnknownCommand().wire(), b"ERROR")
        self.assertEqual(
            ClientError(classic.BAD_FORMAT).wire(), b"CLIENT_ERROR bad command line format"
        )
        self.assertEqual(ClientError(classic.BAD_DATA_CHUNK).wire(), b"CLIENT_ERROR bad data chunk")
        self.assertEqual(
            ClientError(classic.BAD_EXPTIME).wire(), b"CLIENT_ERROR invalid exptime argument"
        )
        self.assertEqual(
            ClientError(classic.BAD_DELTA).wire(), b"CLIENT_ERROR invalid numeric delta argument"
        )
        self.assertEqual(
            ClientError(classic.NON_NUMERIC).wire(),
            b"CLIENT_ERROR cannot increment or decrement non-numeric value",
        )
        self.assertEqual(
            ClientError(classic.BAD_SHUTDOWN_MODE).wire(), b"CLIENT_ERROR invalid shutdown mode"
        )
        self.assertEqual(
            ClientError(classic.BAD_STATS_DETAIL).wire(),
            b"CLIENT_ERROR usage: stats detail on|off|dump",
        )
        from myproto.errors import ServerError

        self.assertEqual(
            ServerError(classic.TOO_LARGE).wire(), b"SERVER_ERROR object too large for cache"
        )
        self.assertEqual(
            ServerError(classic.OUT_OF_MEMORY).wire(), b"SERVER_ERROR out of memory storing object"
        )
        self.assertIsInstance(ClientError(b"x"), ProtocolError)

    def test_literals(self) -> None:
        """
        The fixed reply lines are memcached's.
        """
        self.assertEqual(classic.SHUTDOWN_NOT_ENABLED, b"ERROR: shutdown not enabled")
        self.assertEqual(classic.TOO_MANY_CONNECTIONS, b"ERROR Too many open connections")


class PlainSetTests(SynchronousTestCase):
    """
    L{classic.parsePlainSet} makes the request the general parser makes of
    a plain C{set} line, and declines every other shape.
    """

    def general(self, line: bytes) -> object:
        tokens, count = classic.tokenize(line)
        try:
            return classic.PARSERS[tokens[0]](tokens[0], tokens, count)
        except ProtocolError as error:
            return error.wire()

    def test_sameRequest(self) -> None:
        """
        For the lines it takes, the request is the general parser's.
        """
        for line in [
            b"set k 0 0 1",
            b"set k 5 300 100 noreply",
            b"set " + b"k" * 250 + b" 4294967 999999999 0",
            b"set k 000 0012 7",
        ]:
            self.assertEqual(classic.parsePlainSet(line), self.general(line), line)

    def test_declines(self) -> None:
        """
        Anything else is left to the general parser: extra or missing
        tokens, runs of spaces, signs, long numbers, a key over 250 bytes.
        """
        for line in [
            b"set k 0 0",
            b"set k 0 0 1 junk",
            b"set k 0 0 1 noreply extra",
            b"set  k 0 0 1",
            b"set k 0 0 1 ",
            b"set k -1 0 1",
            b"set k 0 -1 1",
            b"set k 0 0 +1",
            b"set k 0 0 0x10",
            b"set k 4294967296 0 1",
            b"set k 0 0 1000000000",
            b"set " + b"k" * 251 + b" 0 0 1",
            b"set k 0 0 1\r",
        ]:
            self.assertIsNone(classic.parsePlainSet(line), line)

    def test_throughParseRequest(self) -> None:
        """
        C{parseRequest} gives the same request for a plain C{set} as before,
        and a line with a NUL is cut there first, as memcached cuts it.
        """
        self.assertEqual(
            parseRequest(b"set k 1 2 3 noreply"),
            classic.StorageRequest(b"set", b"k", 1, 2, 3, 0, True),
        )
        self.assertEqual(
            parseRequest(b"set k 1 2 3\0 noreply"),
            classic.StorageRequest(b"set", b"k", 1, 2, 3, 0, False),
        )
