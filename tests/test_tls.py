"""
Tests for serving over TLS: the self-signed certificate of
L{myproto.certificates}, a real loopback round trip through an C{ssl:}
endpoint, and C{tac/myproto.tac}.

These are the only tests with real sockets: 127.0.0.1, port 0, and the server
closes each connection first (after C{quit}).
"""

from __future__ import annotations

import ipaddress
import os
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection, loadApplication
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from myproto.certificates import selfSignedCertificate
from tests.helpers import TAC, SetEnvironment, selfSignedFiles

SESSION = b"set k 0 0 2\r\nhi\r\nget k\r\nquit\r\n"
SESSION_REPLY = b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"


class Collector(Protocol):
    """
    A client that keeps everything it receives.

    @ivar done: fires with all the bytes received once the connection is
        lost.
    """

    def __init__(self) -> None:
        self._received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._received.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(b"".join(self._received))


class SelfSignedCertificateTests(SynchronousTestCase):
    """
    L{selfSignedCertificate} writes a usable key and certificate once.
    """

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())
        self.keyPath, self.certPath = selfSignedCertificate(
            self.directory, "cache.example"
        )

    def test_files(self) -> None:
        """
        It creates the directory and writes C{key.pem} and C{cert.pem} in it;
        only the owner may read the key, anyone the certificate.
        """
        self.assertEqual(self.keyPath, self.directory.child("key.pem"))
        self.assertEqual(self.certPath, self.directory.child("cert.pem"))
        self.assertEqual(os.stat(self.keyPath.path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.certPath.path).st_mode & 0o777, 0o644)

    def test_certificate(self) -> None:
        """
        The certificate is self-signed for the host name, as DNS name and
        common name, and also names 127.0.0.1; the key is an EC key matching
        it.
        """
        certificate = x509.load_pem_x509_certificate(self.certPath.getContent())
        key = load_pem_private_key(self.keyPath.getContent(), password=None)
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(certificate.public_key(), key.public_key())
        self.assertEqual(certificate.issuer, certificate.subject)
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["cache.example"])
        self.assertEqual(
            names.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1")],
        )
        [commonName] = certificate.subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME
        )
        self.assertEqual(commonName.value, "cache.example")

    def test_reused(self) -> None:
        """
        A second call leaves existing files alone.
        """
        key, cert = self.keyPath.getContent(), self.certPath.getContent()
        self.assertEqual(
            selfSignedCertificate(self.directory, "cache.example"),
            (self.keyPath, self.certPath),
        )
        self.assertEqual(
            (self.keyPath.getContent(), self.certPath.getContent()), (key, cert)
        )

    def test_helper(self) -> None:
        """
        L{selfSignedFiles} returns the files and the certificate's PEM.
        """
        keyFile, certFile, certPEM = selfSignedFiles(
            FilePath(self.mktemp()), "localhost"
        )
        self.assertEqual(certFile.getContent(), certPEM)
        self.assertTrue(keyFile.exists())
        self.assertEqual(
            Certificate.loadPEM(certPEM).getSubject().commonName, b"localhost"
        )


class TLSLoopbackTests(TestCase):
    """
    The server over a real TLS connection on the loopback interface.
    """

    # A server that never closes fails the test in seconds, not trial's 120.
    timeout = 30

    async def test_roundTrip(self) -> None:
        """
        A client that verifies the certificate can set and get over C{ssl:}.
        """
        from twisted.internet import reactor

        keyFile, certFile, certPEM = selfSignedFiles(
            FilePath(self.mktemp()), "localhost"
        )
        description = "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
            quoteStringArgument(keyFile.path), quoteStringArgument(certFile.path)
        )
        factory = CacheServerFactory(MemoryStore(reactor), reactor, ServerSettings())
        port = await serverFromString(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        trust = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(certPEM))
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port, trust)
        client = await connectProtocol(endpoint, Collector())
        client.transport.write(SESSION)
        self.assertEqual(await client.done, SESSION_REPLY)


class TacTests(TestCase):
    """
    C{tac/myproto.tac} builds a TCP and a TLS listener that really serve.
    """

    timeout = 30

    def setUp(self) -> None:
        self.tlsDirectory = FilePath(self.mktemp())
        SetEnvironment(self)(
            MYPROTO_TCP_PORT="0",
            MYPROTO_TLS_PORT="0",
            MYPROTO_TLS_DIR=self.tlsDirectory.path,
            MYPROTO_TLS_KEY="",
            MYPROTO_TLS_CERT="",
        )

    def captureLogs(self) -> list[LogEvent]:
        """
        Keep the log events emitted from now until the end of the test.

        @return: the list the events are appended to.
        """
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events

    def loadListeners(self) -> list[StreamServerEndpointService]:
        """
        Load the application from the C{.tac} file without starting it.

        @return: its listening services, TCP first.
        """
        application = loadApplication(TAC.path, "python")
        [top] = list(IServiceCollection(application))
        listeners = [
            child for child in top if isinstance(child, StreamServerEndpointService)
        ]
        self.assertEqual(len(listeners), 2)
        for listener in listeners:
            self.assertFalse(IService(listener).running)
        return listeners

    def test_makesCertificate(self) -> None:
        """
        With no certificate configured, the C{.tac} makes a self-signed one
        for localhost in C{MYPROTO_TLS_DIR} and logs where it is.
        """
        events = self.captureLogs()
        self.loadListeners()
        certificate = Certificate.loadPEM(
            self.tlsDirectory.child("cert.pem").getContent()
        )
        self.assertEqual(certificate.getSubject().commonName, b"localhost")
        self.assertTrue(self.tlsDirectory.child("key.pem").exists())
        logged = " ".join(repr(event) for event in events)
        self.assertIn(self.tlsDirectory.child("cert.pem").path, logged)

    async def test_serves(self) -> None:
        """
        The C{.tac}'s TCP and TLS endpoints both serve the cache; the TLS one
        with the certificate it made, for localhost.
        """
        from twisted.internet import reactor

        tcp, tls = self.loadListeners()
        tcpPort = await tcp.endpoint.listen(tcp.factory)
        self.addCleanup(tcpPort.stopListening)
        tlsPort = await tls.endpoint.listen(tls.factory)
        self.addCleanup(tlsPort.stopListening)
        self.assertEqual(tcpPort.getHost().host, "127.0.0.1")
        self.assertEqual(tlsPort.getHost().host, "127.0.0.1")

        plain = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", tcpPort.getHost().port),
            Collector(),
        )
        plain.transport.write(SESSION)
        self.assertEqual(await plain.done, SESSION_REPLY)

        certPEM = self.tlsDirectory.child("cert.pem").getContent()
        trust = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(certPEM))
        secure = await connectProtocol(
            SSL4ClientEndpoint(reactor, "127.0.0.1", tlsPort.getHost().port, trust),
            Collector(),
        )
        secure.transport.write(SESSION)
        self.assertEqual(await secure.done, SESSION_REPLY)

    def test_givenCertificate(self) -> None:
        """
        A key and certificate named in the environment are used as they are,
        and nothing is written to C{MYPROTO_TLS_DIR}.
        """
        keyFile, certFile, _ = selfSignedFiles(FilePath(self.mktemp()), "localhost")
        SetEnvironment(self)(
            MYPROTO_TLS_KEY=keyFile.path, MYPROTO_TLS_CERT=certFile.path
        )
        events = self.captureLogs()
        self.loadListeners()
        self.assertFalse(self.tlsDirectory.exists())
        logged = " ".join(repr(event) for event in events)
        self.assertIn(certFile.path, logged)
