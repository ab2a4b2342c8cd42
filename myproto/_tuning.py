"""
Every reach below Twisted's public API, in one place, each with the
measurement that pays for it.  Nothing else in myproto touches Twisted's
private attributes or replaces its methods.

All of it is applied per connection by L{tuneTransport}, which the protocol
adapter calls when a connection is made; transports it does not know (UNIX
sockets, L{StringTransport}) are left as they are.
"""

from __future__ import annotations

import errno
from types import MethodType
from typing import Any

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet import main, tcp
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol
from twisted.python import log
from twisted.python.failure import Failure

# The most connections a listening TCP port accepts in one reactor turn.
# Twisted starts at 100 and adds 20 after each full batch, so in a burst of
# thousands of connects one turn grows to accept hundreds, and clients
# already connected wait for all of them.  Measured with bench/ workload
# (e), 10,000 connects in a burst: the worst get from a connected client
# took 13-14 ms with Twisted's batches, and 2.3-10.8 ms over ten rounds
# with these (medians 4.9 and 7.1); the burst was accepted as fast.
ACCEPTS_PER_TURN = 64

# The most buffers gathered into one sendmsg; Linux takes at most 1024
# (IOV_MAX).
GATHER_BUFFERS = 512


def tuneTransport(transport: Any) -> None:
    """
    Make each reply cost fewer system calls and reactor turns on the
    transports servers get from Twisted, TCP and TLS over TCP, and keep
    their listening port's accept batches short.  Others (UNIX sockets,
    L{StringTransport}) are left as they are.

    Replies to one read already leave in one write, so two of Twisted's
    ways of saving writes only add work here:

      - a TLS transport (L{BufferingTLSTransport}) holds every write for a
        C{callLater(0)} to gather small ones.  Twisted puts that buffer in
        place by assigning the instance's C{write}; assigning the
        unbuffered C{write} back undoes it the same way.
      - a TCP transport's C{write} queues the bytes and turns on write
        polling, and the next reactor turn sends them and turns polling
        off again: two C{epoll_ctl} calls per reply.  When nothing is
        queued the bytes go to the socket at once instead, and what the
        kernel does not take is queued as before.

    Measured on 16 connections of 90/10 get/set (bench/ workloads (a) and
    (g)): the TCP shortcut saves about a third of the server's CPU per
    request, and over TLS with one request in flight the two together take
    it from 45 to 38 microseconds.

    The listening port the connection came from is held to
    L{ACCEPTS_PER_TURN}, the same way: by assigning the instance's
    C{doRead}.  Beyond those: large replies leave in one C{sendmsg}
    (L{_gatherToSocketFirst}), a TCP connection's reads skip Twisted's
    per-event logging context (L{_readStraight}, L{_tuneReactor}), and a
    TLS connection calls OpenSSL only while it holds bytes (L{_tuneTLS}).

    @param transport: a new connection's transport.
    """
    if isinstance(transport, BufferingTLSTransport):
        transport.write = MethodType(TLSMemoryBIOProtocol.write, transport)  # type: ignore[method-assign]
        _tuneTLS(transport)
        transport = transport.transport
    if type(transport) is not tcp.Server:
        return
    # As memcached does: replies are whole messages, so Nagle's algorithm
    # only holds them back waiting for ACKs.
    transport.setTcpNoDelay(True)
    transport.write = MethodType(_writeToSocketFirst, transport)  # type: ignore[method-assign]
    transport.writeSequence = MethodType(_gatherToSocketFirst, transport)  # type: ignore[method-assign]
    transport.doRead = MethodType(_readStraight, transport)  # type: ignore[method-assign]
    transport.myprotoTuned = True
    _tuneReactor(transport.reactor)
    port = transport.server
    if isinstance(port, tcp.Port) and "doRead" not in vars(port):
        port.doRead = MethodType(_acceptInTurns, port)  # type: ignore[method-assign]


def _acceptInTurns(port: tcp.Port) -> None:
    """
    L{tcp.Port.doRead}, accepting at most L{ACCEPTS_PER_TURN} connections.
    """
    port.numberAccepts = min(port.numberAccepts, ACCEPTS_PER_TURN)
    type(port).doRead(port)


def _writeToSocketFirst(transport: tcp.Server, data: bytes) -> None:
    """
    L{tcp.Server.write}, trying the socket first when no earlier bytes wait
    to be sent (so these cannot overtake them).
    """
    if (
        not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            # Full (EAGAIN), or broken: a queued write finds out which.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    tcp.Server.write(transport, data)


def raiseListenErrorsAtStart(service: Any) -> None:
    """
    Make a C{StreamServerEndpointService} raise a failure to listen (a port
    in use) from C{privilegedStartService}, as the services
    C{twisted.application.strports.service} makes do, by the same private
    flag.  Not a measurement but a behaviour: without it the error is only
    logged and C{twistd -n} serves nothing instead of exiting with one line
    and status 1 (C{tests.test_options}' C{test_twistdPortInUse}).
    L{myproto.service.ListeningService} is such a service of its own, so it
    sets the flag that C{strports} would have.
    """
    service._raiseSynchronously = True


def _gatherToSocketFirst(transport: tcp.Server, parts: list[bytes]) -> None:
    """
    L{tcp.Server.writeSequence}, trying the socket first, as
    L{_writeToSocketFirst}, with one C{sendmsg} of all the buffers: a large
    value goes to the kernel straight from the stored C{bytes}, where a
    joined reply would copy it once more, and Twisted's own
    C{writeSequence} twice.  What the kernel does not take is queued in
    order, as copies of only the unsent part.  With 64 KiB values (bench/
    workload (c)) this, the read path below and keeping a value's first
    part as a view (L{myproto.connection}) took myproto from 143,000 to
    56,300 instructions per request (bench/instructions.py; the floor
    server: 39,900).
    """
    if (
        len(parts) <= GATHER_BUFFERS
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
    ):
        try:
            sent = transport.socket.sendmsg(parts)
        except OSError:
            # Full (EAGAIN), or broken: a queued write finds out which.
            sent = 0
        for index, part in enumerate(parts):
            if sent < len(part):
                rest = [part[sent:]] if sent else [part]
                tcp.Server.writeSequence(transport, rest + parts[index + 1 :])
                return
            sent -= len(part)
        return
    tcp.Server.writeSequence(transport, parts)


def _readStraight(transport: tcp.Server) -> Any:
    """
    L{tcp.Connection.doRead} and its C{_dataReceived} in one call.
    """
    try:
        data = transport.socket.recv(transport.bufferSize)
    except OSError as error:
        if error.args[0] == errno.EWOULDBLOCK:
            return None
        return main.CONNECTION_LOST
    if not data:
        return main.CONNECTION_DONE
    transport.protocol.dataReceived(data)
    return None


def _tuneReactor(reactor: Any) -> None:
    """
    Have an epoll reactor hand a read on a tuned connection straight to its
    C{doRead}.

    For every event, Twisted's L{EPollReactor.doPoll} calls
    L{log.callWithLogger}, which asks the connection for its log prefix and
    pushes a copy of the legacy logging context (a dict for the C{system} of
    C{twisted.python.log} events, which myproto, logging with
    L{twisted.logger.Logger}, never reads) through about eight Python calls,
    then goes through C{_doReadOrWrite}'s checks.  For a plain read on a
    connection L{tuneTransport} tuned (C{myprotoTuned}), this poll calls
    C{doRead} and disconnects on its answer, as C{_doReadOrWrite} does;
    every other event and connection goes Twisted's way.  An exception
    still ends in C{log.err}, only without the connection's prefix.

    Measured on workload (a) with bench/instructions.py (instructions
    counted by callgrind, CPython 3.11): the do-nothing server of
    bench/floor.py spends 35,300 instructions per request on Twisted's
    poll and 17,900 on this one; myproto went from 51,100 to 33,300, the
    largest single saving in its request path.
    """
    if "doIteration" in vars(reactor):
        return
    try:
        from twisted.internet.epollreactor import EPOLLIN, EPollReactor
    except ImportError:
        return
    if not isinstance(reactor, EPollReactor) or not all(
        hasattr(reactor, name) for name in ("_poller", "_selectables", "_doReadOrWrite", "_disconnectSelectable")
    ):
        return
    poller = reactor._poller
    selectables = reactor._selectables
    doReadOrWrite = reactor._doReadOrWrite
    disconnect = reactor._disconnectSelectable
    callWithLogger = log.callWithLogger

    def doPoll(timeout: float | None) -> None:
        try:
            events = poller.poll(-1 if timeout is None else timeout, len(selectables))
        except OSError as error:
            if error.errno == errno.EINTR:
                return
            raise
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            if event == EPOLLIN and getattr(selectable, "myprotoTuned", False):
                try:
                    why = selectable.doRead()
                except BaseException as error:
                    why = error
                    log.err()
                if why:
                    try:
                        disconnect(selectable, why, True)
                    except KeyboardInterrupt:
                        raise
                    except BaseException:
                        log.err()
            else:
                callWithLogger(selectable, doReadOrWrite, selectable, fd, event)

    reactor.doIteration = doPoll


def _tuneTLS(protocol: TLSMemoryBIOProtocol) -> None:
    """
    Have a TLS connection call OpenSSL only when there is something to
    read.

    After handing a read's records to OpenSSL, Twisted calls
    C{Connection.recv} until it raises C{WantReadError}, and after each
    write C{bio_read} until it does: two exceptions, raised through
    pyOpenSSL's error handling and caught, for every request.  A memory
    BIO says how many bytes it holds (C{BIO_get_mem_data}), and
    C{SSL_pending} how many decrypted bytes wait, so these connections ask
    OpenSSL for application data only while either holds some, and for
    bytes to send only when its outgoing BIO holds some: the same calls,
    without the ones that can only fail.  (OpenSSL reads one record at a
    time, since neither Twisted's contexts nor myproto's turn read-ahead
    on, so bytes it has not decrypted are still in the incoming BIO.)

    Measured with one request in flight on 16 connections (bench/
    workload (g)) with bench/instructions.py: 85,500 instructions per
    request without this, 81,000 with it.
    """
    try:
        from OpenSSL._util import ffi, lib

        connection = protocol._tlsConnection
        ssl, incoming, outgoing = connection._ssl, connection._into_ssl, connection._from_ssl
        pendingBytes, bioBytes = lib.SSL_pending, lib.BIO_get_mem_data
    except (ImportError, AttributeError):
        return
    if incoming is None or outgoing is None or not hasattr(protocol, "_flushReceiveBIO"):
        return
    null = ffi.NULL
    flushSend = TLSMemoryBIOProtocol._flushSendBIO
    deliver = ProtocolWrapper.dataReceived

    def flushSendBIO() -> None:
        if bioBytes(outgoing, null) > 0:
            flushSend(protocol)

    def flushReceiveBIO() -> None:
        # TLSMemoryBIOProtocol._flushReceiveBIO, asking only while bytes wait.
        while not protocol._lostTLSConnection and (pendingBytes(ssl) > 0 or bioBytes(incoming, null) > 0):
            try:
                data = connection.recv(2**15)
            except WantReadError:
                break
            except ZeroReturnError:
                protocol._shutdownTLS()
                protocol._tlsShutdownFinished(None)
            except Error:
                protocol._tlsShutdownFinished(Failure())
            else:
                if not protocol._aborted:
                    deliver(protocol, data)
        flushSendBIO()

    protocol._flushSendBIO = flushSendBIO  # type: ignore[method-assign]
    protocol._flushReceiveBIO = flushReceiveBIO  # type: ignore[method-assign]
