"""
Fixtures shared by the test modules.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from typing import Any, Callable, Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted.python.filepath import FilePath

from myproto.certificates import selfSignedCertificate
from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore

#: trial's assertions for helpers that have no test case of their own (and
#: for the Hypothesis state machine): C{check.assertEqual(reply, b"END\\r\\n")}
#: raises the same AssertionError, with the same message, as in a test.
check = SynchronousTestCase()


def selfSignedFiles(
    directory: FilePath[str], host: str
) -> tuple[FilePath[str], FilePath[str], bytes]:
    """
    Write an EC private key and a self-signed certificate for C{host} (a DNS
    subject alternative name, plus the IP address 127.0.0.1) as PEM files.

    @param directory: where to write them; created if needed.
    @param host: the name clients will check the certificate against.

    @return: the key file, the certificate file and the certificate's PEM
        bytes (for a client's trust root).
    """
    keyFile, certFile = selfSignedCertificate(directory, host)
    return keyFile, certFile, certFile.getContent()


# ---------------------------------------------------------------------------
# In memory: the real factory on StringTransports, time on a Clock.

#: A plausible wall-clock start, so that absolute exptimes look like unix
#: times: L{Server}'s clock starts here.
START = 1_700_000_000


class Client:
    """
    One connection to a L{Server}, over a L{StringTransport}.
    """

    def __init__(self, protocol: CacheServerProtocol, transport: StringTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self._seen = 0

    def send(self, data: bytes) -> bytes:
        """
        Deliver C{data} as one read.

        @return: what the server wrote since the last call.
        """
        self.protocol.dataReceived(data)
        return self.received()

    def received(self) -> bytes:
        """
        @return: what the server wrote since the last call.
        """
        output = self.transport.value()
        new = output[self._seen :]
        self._seen = len(output)
        return new

    @property
    def closed(self) -> bool:
        """
        Whether the server has closed (or started closing) the connection.
        """
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        """
        Tell the server the connection is gone, as the reactor would.
        """
        self.protocol.connectionLost(Failure(ConnectionDone()))


class Server:
    """
    A store, a clock and the real factory, as C{makeService} puts them
    together.

    @cvar clientType: what L{connect} wraps each connection in.
    """

    clientType = Client

    def __init__(self, settings: ServerSettings | None = None, clock: Clock | None = None) -> None:
        if settings is None:
            settings = ServerSettings()
        self.clock = Clock() if clock is None else clock
        self.clock.advance(START - self.clock.seconds())
        self.settings = settings
        self.store = MemoryStore(
            self.clock,
            maxBytes=settings.memoryLimit,
            maxItemSize=settings.maxItemSize,
            useCas=settings.useCas,
        )
        self.factory = CacheServerFactory(self.store, self.clock, settings)
        self._port = 40000

    def connect(self) -> Client:
        """
        @return: a new client connection.
        """
        self._port += 1
        address = IPv4Address("TCP", "127.0.0.1", self._port)
        protocol = self.factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return self.clientType(protocol, transport)

    def stats(self, *arguments: bytes) -> dict[str, str]:
        """
        Ask for statistics on a connection of their own.

        @return: the C{STAT} lines as a name to value mapping.
        """
        client = self.connect()
        try:
            return parseStats(client.send(b" ".join((b"stats",) + arguments) + b"\r\n"))
        finally:
            client.lose()


def parseStats(reply: bytes) -> dict[str, str]:
    """
    @return: the C{STAT name value} lines of C{reply} as a mapping.
    """
    check.assertTrue(reply.endswith(b"END\r\n"), reply)
    return {
        name.decode("ascii"): value.decode("ascii")
        for name, value in re.findall(rb"STAT (\S+) ([^\r\n]*)\r\n", reply)
    }


#: memcached 1.6.18's general statistics, in its order.
MEMCACHED_GENERAL_STATS = """
pid uptime time version libevent pointer_size rusage_user rusage_system
max_connections curr_connections total_connections rejected_connections
connection_structures response_obj_oom response_obj_count response_obj_bytes
read_buf_count read_buf_bytes read_buf_bytes_free read_buf_oom reserved_fds
cmd_get cmd_set cmd_flush cmd_touch cmd_meta get_hits get_misses get_expired
get_flushed delete_misses delete_hits incr_misses incr_hits decr_misses
decr_hits cas_misses cas_hits cas_badval touch_hits touch_misses
store_too_large store_no_memory auth_cmds auth_errors idle_kicks bytes_read
bytes_written limit_maxbytes accepting_conns listen_disabled_num
time_in_listen_disabled_us threads conn_yields hash_power_level hash_bytes
hash_is_expanding slab_reassign_rescues slab_reassign_chunk_rescues
slab_reassign_evictions_nomem slab_reassign_inline_reclaim
slab_reassign_busy_items slab_reassign_busy_deletes slab_reassign_running
slabs_moved lru_crawler_running lru_crawler_starts lru_maintainer_juggles
malloc_fails log_worker_dropped log_worker_written log_watcher_skipped
log_watcher_sent log_watchers unexpected_napi_ids round_robin_fallback bytes
curr_items total_items slab_global_page_pool expired_unfetched
evicted_unfetched evicted_active evictions reclaimed crawler_reclaimed
crawler_items_checked lrutail_reflocked moves_to_cold moves_to_warm
moves_within_lru direct_reclaims lru_bumps_dropped
""".split()


#: memcached 1.6.18's C{stats settings}, in its order.
MEMCACHED_SETTINGS = """
maxbytes maxconns tcpport udpport inter verbosity oldest evictions
domain_socket umask shutdown_command growth_factor chunk_size num_threads
num_threads_per_udp stat_key_prefix detail_enabled reqs_per_event cas_enabled
tcp_backlog binding_protocol auth_enabled_sasl auth_enabled_ascii
item_size_max maxconns_fast hashpower_init slab_reassign slab_automove
slab_automove_ratio slab_automove_window slab_chunk_max lru_crawler
lru_crawler_sleep lru_crawler_tocrawl tail_repair_time flush_enabled
dump_enabled hash_algorithm lru_maintainer_thread lru_segmented hot_lru_pct
warm_lru_pct hot_max_factor warm_max_factor temp_lru temporary_ttl
idle_timeout watcher_logbuf_size worker_logbuf_size read_buf_mem_limit
track_sizes inline_ascii_response ext_item_size ext_item_age ext_low_ttl
ext_recache_rate ext_wbuf_size ext_compact_under ext_drop_under ext_max_sleep
ext_max_frag slab_automove_freeratio ext_drop_unread ssl_enabled
ssl_chain_cert ssl_key ssl_verify_mode ssl_keyformat ssl_ciphers ssl_ca_cert
ssl_wbuf_size ssl_session_cache ssl_kernel_tls ssl_min_version num_napi_ids
memory_file
""".split()


#: Storage, retrieval and arithmetic commands, classic and meta, for
#: C{watch fetchers mutations} to log: C{tests.test_observability} holds
#: memcached 1.6.18's lines for it, and C{tests.test_observability_differential}
#: sends it to memcached and to myproto.
WATCH_STREAM = (
    b"set foo 5 100 3\r\nbar\r\nset a%20b 0 0 1\r\nx\r\nget foo nokey\r\n"
    b"add foo 0 0 1\r\nx\r\nreplace nope 0 0 1\r\nx\r\nappend foo 0 0 2\r\nyy\r\n"
    b"prepend foo 0 0 1\r\nz\r\ncas foo 0 0 1 999\r\nq\r\ncas nope 0 0 1 1\r\nq\r\n"
    b"gets foo\r\ntouch foo 10\r\ngat 0 foo\r\nincr foo 1\r\ndelete foo\r\n"
    b"set n 0 0 1\r\n5\r\nincr n 3\r\ndecr n 1\r\nmg n v\r\nmg missing v\r\nms m 2\r\nhi\r\n"
)


# ---------------------------------------------------------------------------
# The deployment file and its environment.

#: The deployment file C{tac/myproto.tac}, for tests that load it.
TAC = FilePath(__file__).parent().sibling("tac").child("myproto.tac")


class SetEnvironment:
    """
    Set environment variables for one test, putting them back afterwards.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self._testCase = testCase

    def __call__(self, **values: str) -> None:
        for name, value in values.items():
            self._testCase.addCleanup(self._restore, name, os.environ.get(name))
            os.environ[name] = value

    @staticmethod
    def _restore(name: str, value: str | None) -> None:
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---------------------------------------------------------------------------
# Transports, waits and reads.


class FillingTransport(StringTransport):
    """
    A transport that, like a real one, pauses its streaming producer when
    more than C{bufferSize} bytes are waiting to be sent.
    """

    bufferSize = 65536

    def write(self, data: bytes) -> None:
        super().write(data)
        full = len(self.io.getvalue()) > self.bufferSize
        if full and self.producer is not None and self.producerState != "paused":
            self.producer.pauseProducing()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self.write(b"".join(data))

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    def drain(self) -> bytes:
        """
        Hand over what was written, as if the client read it all, and tell
        the producer it may go on.
        """
        sent = self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return sent


async def waitFor(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    reactor: Any = None,
    interval: float = 0.01,
) -> None:
    """
    Wait on the reactor until C{condition()} holds; fail loudly if it does
    not within C{timeout} seconds.

    For tests on real sockets and processes, where there is no L{Clock} to
    advance: the bound is generous, and reaching it is a failure, never a
    silent end of the wait.

    @param condition: checked now and every C{interval} seconds.
    @param timeout: seconds after which to give up.
    @param what: what is awaited, for the failure message.
    @param reactor: the reactor to wait on; the global one by default.
    @param interval: seconds between checks.
    @raise AssertionError: if C{condition()} is still false after
        C{timeout} seconds.
    """
    if reactor is None:
        from twisted.internet import reactor
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        await deferLater(reactor, interval, lambda: None)


def waitForInThread(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.01,
) -> None:
    """
    L{waitFor} for code that blocks in a thread (never the reactor's).

    @raise AssertionError: if C{condition()} is still false after
        C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        time.sleep(interval)


def receiveUntil(
    connection: socket.socket,
    complete: Callable[[bytes], bool],
    what: str,
    received: bytes = b"",
) -> bytes:
    """
    Read from a blocking socket (which has a timeout set) until what has
    arrived is complete.

    @param connection: the socket; its timeout bounds each read.
    @param complete: called with everything received so far.
    @param what: what is awaited, for the failure message.
    @param received: bytes already read.
    @return: everything received.
    @raise AssertionError: if the peer closes, or a read times out, first.
    """
    while not complete(received):
        try:
            chunk = connection.recv(65536)
        except socket.timeout:
            raise AssertionError(
                "timed out waiting for {}; received {!r}".format(what, received[-500:])
            ) from None
        if not chunk:
            raise AssertionError(
                "connection closed before {}; received {!r}".format(what, received[-500:])
            )
        received += chunk
    return received


# The binary protocol's 24-byte header: magic, opcode, key length, extras
# length, data type, vbucket (or status), body length, opaque, CAS.  Written
# here from memcached's protocol_binary.h, not taken from myproto.
BINARY_HEADER = struct.Struct(">BBHBBHIIQ")


# The extras of binary requests.


def storage(flags: int = 0, exptime: int = 0) -> bytes:
    """
    @return: the extras of SET, ADD and REPLACE.
    """
    return struct.pack(">II", flags, exptime)


def counter(delta: int, initial: int = 0, exptime: int = 0) -> bytes:
    """
    @return: the extras of INCREMENT and DECREMENT.
    """
    return struct.pack(">QQI", delta, initial, exptime)


def expiration(exptime: int) -> bytes:
    """
    @return: the extras of FLUSH, TOUCH and GAT.
    """
    return struct.pack(">I", exptime)


def binaryRequest(
    opcode: int,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    opaque: int = 0,
    cas: int = 0,
    magic: int = 0x80,
    bodyLength: int | None = None,
    dataType: int = 0,
    vbucket: int = 0,
) -> bytes:
    """
    @return: a binary request; C{bodyLength} overrides the true one.
    """
    if bodyLength is None:
        bodyLength = len(extras) + len(key) + len(value)
    header = BINARY_HEADER.pack(
        magic, opcode, len(key), len(extras), dataType, vbucket, bodyLength, opaque, cas
    )
    return header + extras + key + value


def binaryResponse(
    opcode: int,
    status: int = 0,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    opaque: int = 0,
    cas: int = 0,
) -> bytes:
    """
    @return: the binary response memcached would send.
    """
    bodyLength = len(extras) + len(key) + len(value)
    header = BINARY_HEADER.pack(0x81, opcode, len(key), len(extras), 0, status, bodyLength, opaque, cas)
    return header + extras + key + value


def binaryFrames(data: bytes) -> tuple[list[tuple[tuple[int, ...], bytes]], bytes]:
    """
    Split binary responses.

    @return: each whole response as its header fields and body, and the
        bytes after the last whole one.
    """
    frames = []
    position = 0
    while len(data) - position >= BINARY_HEADER.size:
        fields = BINARY_HEADER.unpack_from(data, position)
        end = position + BINARY_HEADER.size + fields[6]
        if end > len(data):
            break
        frames.append((fields, data[position + BINARY_HEADER.size : end]))
        position = end
    return frames, data[position:]


# memcached 1.6.18's per-class "stats items" fields, in its order.
MEMCACHED_ITEM_STATS = """
number number_hot number_warm number_cold age_hot age_warm age mem_requested
evicted evicted_nonzero evicted_time outofmemory tailrepairs reclaimed
expired_unfetched evicted_unfetched evicted_active crawler_reclaimed
crawler_items_checked lrutail_reflocked moves_to_cold moves_to_warm
moves_within_lru direct_reclaims hits_to_hot hits_to_warm hits_to_cold
hits_to_temp
""".split()

# memcached 1.6.18's per-class "stats slabs" fields, in its order, then the
# totals.
MEMCACHED_SLAB_STATS = """
chunk_size chunks_per_page total_pages total_chunks used_chunks free_chunks
free_chunks_end get_hits cmd_set delete_hits incr_hits decr_hits cas_hits
cas_badval touch_hits
""".split()
MEMCACHED_SLAB_TOTALS = ["active_slabs", "total_malloced"]


def statNames(reply: bytes) -> list[str]:
    """
    @return: the names of the C{STAT} lines of a reply, in order, checking
        that every line is a C{STAT name value} line and that C{END} ends it.
    """
    lines = reply.split(b"\r\n")
    check.assertEqual(lines[-2:], [b"END", b""], reply[-50:])
    names = []
    for line in lines[:-2]:
        match = re.fullmatch(rb"STAT ([a-z0-9_:]+) ([^ \r\n]+)", line)
        if match is None:
            raise AssertionError("not a STAT line: {!r}".format(line))
        names.append(match.group(1).decode("ascii"))
    return names
