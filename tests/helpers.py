"""
Fixtures shared by the test modules.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from twisted.python.filepath import FilePath

from myproto.tls import selfSignedCertificate


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
