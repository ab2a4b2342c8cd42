"""
Errors a client can provoke.  Each renders the exact reply line memcached
sends for it, and knows whether the client asked not to hear about it.
"""

from __future__ import annotations

from typing import Callable, Protocol


class ProtocolError(Exception):
    """
    A request that cannot be carried out; the connection stays usable.

    @ivar noreply: whether the request said C{noreply}, which in memcached
        silences most errors too.
    """

    prefix = b""

    def __init__(self, message: bytes = b"", noreply: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.noreply = noreply

    def wire(self) -> bytes:
        """
        @return: the reply line, without its CRLF.
        """
        if self.message:
            return self.prefix + b" " + self.message
        return self.prefix


class UnknownCommand(ProtocolError):
    """
    A command memcached does not know, or a known one with the wrong number
    of arguments: C{ERROR}.
    """

    prefix = b"ERROR"


class ClientError(ProtocolError):
    """
    Input that does not conform to the protocol: C{CLIENT_ERROR <why>}.
    """

    prefix = b"CLIENT_ERROR"


class ServerError(ProtocolError):
    """
    A well-formed request the server cannot satisfy: C{SERVER_ERROR <why>}.
    """

    prefix = b"SERVER_ERROR"


class CloseConnection(Exception):
    """
    Input after which memcached silently drops the connection (an HTTP
    request line, or a line too long to be a command).
    """


class Stream(Protocol):
    """
    What a connection is handed over to (see L{HandOver}): a L{Dump} or a
    L{Subscription}.

    @ivar endless: whether it never gives the connection back (a
        L{Subscription}).
    @ivar pipelineError: the reply line when other replies are still pending,
        which memcached refuses.
    """

    endless: bool
    pipelineError: bytes

    def close(self) -> None:
        """
        It is finished, or the connection has gone.
        """


class Dump(Stream, Protocol):
    """
    A finite stream (C{lru_crawler metadump}): an iterator of byte strings
    to write in turn, after which the connection reads commands again.
    """

    def start(self) -> None:
        """
        The connection is handed over.
        """

    def __next__(self) -> bytes:
        """
        @return: the next bytes to write.
        @raise StopIteration: when all is written.
        """


class Subscription(Stream, Protocol):
    """
    An endless stream (C{watch}): it writes when it has something to say.
    """

    def start(self, write: Callable[[bytes], object]) -> None:
        """
        The connection is handed over.

        @param write: sends bytes to the client.
        """

    def pause(self) -> None:
        """
        The connection's buffer is full.
        """

    def resume(self) -> None:
        """
        The connection's buffer has drained.
        """


class HandOver(Exception):
    """
    A command after which the connection is handed over to a stream that
    writes on its own (C{watch}, C{lru_crawler metadump}), as memcached hands
    the connection to a side thread.  The connection reads no more commands
    until the stream gives it back; a C{watch} never does.

    @ivar stream: what takes over.
    """

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self.stream = stream
