"""
Differential tests of SASL (C{-S}): the same bytes go to a real memcached
1.6.18 run with C{-S} and to myproto with the same user, and the responses
must be the same bytes.

memcached reads its users through Cyrus SASL: each test writes a Cyrus
configuration (C{mech_list: plain}, a C{sasldb_path}) and a sasldb made
with C{saslpasswd2} (Debian's C{sasl2-bin}) in a temporary directory, and
points memcached at it with C{SASL_CONF_PATH}.  myproto reads the same user
from a C{--sasl-file}-style pair.

Every stream runs on a fresh connection, whole and in two random
chunkings, and ends with a QUIT, which an unauthenticated connection
answers with C{Auth failure.} and a hang-up: either way the server closes.
"""

from __future__ import annotations

import random

from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.wire import binary as B
from tests.helpers import SetEnvironment, binaryFrames, binaryRequest, storage
from tests.reference import (
    Part,
    afterBinaryResponses,
    binaryMismatch,
    exchange,
    listenMyproto,
    memcachedSaslConfiguration,
    normaliseBinary,
    startMemcached,
)

HOST = "127.0.0.1"
USER = b"alice"
PASSWORD = b"secret"
GOOD = b"\0alice\0secret"
BAD = b"\0alice\0wrong"


def auth(data: bytes = GOOD, mechanism: bytes = b"PLAIN", opaque: int = 0) -> bytes:
    return binaryRequest(B.SASL_AUTH, mechanism, value=data, opaque=opaque)


def step(data: bytes = GOOD, mechanism: bytes = b"PLAIN", opaque: int = 0) -> bytes:
    return binaryRequest(B.SASL_STEP, mechanism, value=data, opaque=opaque)


LIST = binaryRequest(B.SASL_LIST_MECHS)
GET = binaryRequest(B.GET, b"k", opaque=5)
VERSION = binaryRequest(B.VERSION)
# The largest data memcached takes into a SASL_AUTH (its item may not be
# chunked: 48 + 5 + 1 + data + 2 + 8 bytes of 512 KiB).
LARGEST = 512 * 1024 - 48 - 5 - 1 - 2 - 8

CORPUS: dict[str, list[Part]] = {
    "list mechanisms": [LIST],
    # The only stream that stores: the others find "k" missing.
    "plain": [
        auth(opaque=9) + binaryRequest(B.SET, b"k", storage(3), b"v", opaque=1) + GET
        + binaryRequest(B.DELETE, b"k")
    ],
    "wrong password": [auth(BAD) + GET],
    "unknown user": [auth(b"\0bob\0secret") + GET],
    "lower-case mechanism": [auth(mechanism=b"plain") + GET],
    "mechanism ends at a NUL": [auth(mechanism=b"PLAIN\0junk") + GET],
    "mechanism with a space": [auth(mechanism=b"PLAIN ") + GET],
    "unknown mechanism": [auth(mechanism=b"CRAM-MD5") + auth() + GET],
    "continue, then step": [auth(b"") + step() + VERSION + GET],
    "continue twice, then step": [auth(b"") + auth(b"") + step() + GET],
    "continue, then auth": [auth(b"") + auth() + GET],
    "step after a failed step": [auth(b"") + step(BAD) + step(BAD, b"X") + step(mechanism=b"X") + GET],
    "empty step": [auth(b"") + step(b"") + step() + GET],
    "step without auth": [step() + GET],
    "step after a failed auth": [auth(BAD) + step() + GET],
    "step after an unknown mechanism": [auth(b"") + auth(mechanism=b"FOO") + step() + GET],
    "auth after a failed auth": [auth(BAD) + auth() + GET],
    "second auth": [auth() + auth() + GET],
    "second step": [auth(b"") + step() + step() + GET],
    "step after auth": [auth() + step() + GET],
    "failed auth after success": [auth() + auth(BAD) + GET],
    "list forgets the authentication": [auth() + LIST + GET],
    "list, then auth": [LIST + auth() + GET],
    "list during an exchange": [auth(b"") + LIST + step() + GET],
    "continue after success": [auth() + LIST + auth(b"", opaque=4) + step() + GET],
    "authorization identity": [auth(b"alice\0alice\0secret") + GET],
    "another authorization identity": [auth(b"bob\0alice\0secret") + GET],
    "no NUL": [auth(b"alicesecret") + GET],
    "one NUL": [auth(b"alice\0secret") + GET],
    "NUL after the password": [auth(b"\0alice\0secret\0") + GET],
    "empty user": [auth(b"\0\0secret") + GET],
    "empty password": [auth(b"\0alice\0") + GET],
    "opaque and CAS": [
        binaryRequest(B.SASL_AUTH, b"PLAIN", value=GOOD, opaque=99, cas=5)
        + binaryRequest(B.SASL_LIST_MECHS, opaque=98, cas=3)
        + binaryRequest(B.SASL_AUTH, b"PLAIN", opaque=97, cas=7)
    ],
    "mechanism of 32 bytes": [auth(mechanism=b"P" * 32) + VERSION],
    "mechanism of 33 bytes": [auth(mechanism=b"P" * 33) + VERSION],
    "mechanism over the key limit": [auth(mechanism=b"P" * 251) + VERSION],
    "auth without a mechanism": [auth(mechanism=b"") + VERSION],
    "step without a mechanism": [step(mechanism=b"") + VERSION],
    "auth with extras": [binaryRequest(B.SASL_AUTH, b"PLAIN", b"1234", GOOD) + VERSION],
    "list with a body": [binaryRequest(B.SASL_LIST_MECHS, b"x") + VERSION],
    "largest data": [auth(b"x" * LARGEST) + VERSION],
    "data too large": [auth(b"x" * (LARGEST + 1)) + VERSION],
    "data over the item size": [auth(b"x" * 2_000_000) + VERSION],
    "get before auth": [GET + VERSION],
    "quiet get before auth": [binaryRequest(B.GETQ, b"k", opaque=7) + VERSION],
    "quiet set before auth": [binaryRequest(B.SETQ, b"k", storage(), b"v") + VERSION],
    "version, then noop before auth": [VERSION + binaryRequest(B.NOOP)],
    "stat before auth": [binaryRequest(B.STAT)],
    "verbosity before auth": [binaryRequest(B.VERBOSITY, extras=b"\0\0\0\0")],
    "unknown opcode before auth": [binaryRequest(0x50)],
    "long key before auth": [binaryRequest(B.GET, b"k" * 300)],
    "key longer than the body before auth": [binaryRequest(B.GET, b"abcde", bodyLength=2) + b"abcde"],
    "quiet commands after auth": [
        auth() + binaryRequest(B.SETQ, b"q", storage(), b"v") + binaryRequest(B.GETQ, b"q")
        + binaryRequest(B.GETQ, b"none") + binaryRequest(B.NOOP)
    ],
    "text is refused": [b"stats\r\nversion\r\nget foo bar baz\r\n"],
    "short text waits for a header": [b"get foo\r\n", afterBinaryResponses(0)],
}


def saslSettings() -> ServerSettings:
    """
    @return: myproto's settings for memcached's C{-S} with the test's user.
    """
    return ServerSettings(saslCredentials=((USER, PASSWORD),), protocol="binary")


class SaslDifferentialTests(TestCase):
    """
    memcached with C{-S} and myproto with C{-S --sasl-file} answer alike.
    """

    timeout = 300

    async def startMemcached(self):  # type: ignore[no-untyped-def]
        configuration = memcachedSaslConfiguration(FilePath(self.mktemp()), [(USER, PASSWORD)])
        SetEnvironment(self)(SASL_CONF_PATH=configuration)
        return await startMemcached(self, options=["-S"])

    def test_corpus(self) -> Deferred[None]:
        """
        Whole and chunked, every stream's responses match memcached's.
        """

        async def check() -> None:
            memcached = await self.startMemcached()
            problems = []
            for name, stream in CORPUS.items():
                parts: list[Part] = list(stream) + [binaryRequest(B.QUIT)]
                theirs = await exchange(HOST, memcached.port, parts, quit=False)
                expected = normaliseBinary(theirs.data, theirs.closedByServer)
                chunkings = [None, random.Random(name), random.Random(name + "!")]
                problem = await binaryMismatch(name, parts, expected, chunkings, saslSettings())
                if problem is not None:
                    problems.append(problem)
            self.assertEqual(problems, [], "\n".join(problems))

        return Deferred.fromCoroutine(check())

    def test_counters(self) -> Deferred[None]:
        """
        After the same exchanges, C{auth_cmds} and C{auth_errors} are the
        same, and C{stats settings} reports SASL on and the binary
        protocol, as memcached does.
        """

        async def check() -> None:
            memcached = await self.startMemcached()
            port, stop = await listenMyproto(saslSettings())
            self.addCleanup(stop)
            flows = [
                auth() + auth(BAD) + auth(b""),
                auth(b"") + step(BAD) + step() + step(),
                step() + LIST,
                auth(mechanism=b"NOPE") + auth(mechanism=b"P" * 40) + auth(b"x" * 600_000),
            ]
            counted = []
            for server in (memcached.port, port):
                for flow in flows:
                    await exchange(HOST, server, [flow, binaryRequest(B.QUIT)], quit=False)
                reply = await exchange(
                    HOST, server,
                    [auth() + binaryRequest(B.STAT) + binaryRequest(B.STAT, b"settings"),
                     binaryRequest(B.QUIT)],
                    quit=False,
                )
                frames, _ = binaryFrames(reply.data)
                stats = {body[: fields[2]]: body[fields[2]:] for fields, body in frames if fields[2]}
                counted.append(
                    [stats[name] for name in
                     (b"auth_cmds", b"auth_errors", b"auth_enabled_sasl", b"binding_protocol")]
                )
            self.assertEqual(counted[1], counted[0])
            self.assertEqual(counted[0][2:], [b"yes", b"binary"])

        return Deferred.fromCoroutine(check())
