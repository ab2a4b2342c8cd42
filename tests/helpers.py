"""
Fixtures shared by the test modules.
"""

from __future__ import annotations

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
