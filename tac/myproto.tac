# -*- mode: python -*-
"""
A myproto server on a TCP and a TLS endpoint. Run it from the directory where
its C{tls/} folder should live:

    twistd -ny tac/myproto.tac

Each setting below can be overridden by the environment variable named next
to it. With no key and certificate given, a self-signed certificate for
localhost is made on first start (and reused after) in MYPROTO_TLS_DIR.
With MYPROTO_TLS_CA set to a file of CA certificates, a third endpoint
serves mutual TLS: only clients with a certificate signed by one of them.
"""

import os

from twisted.application.service import Application
from twisted.internet.endpoints import quoteStringArgument
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from myproto.tap import makeService
from myproto.certificates import selfSignedCertificate

INTERFACE = os.environ.get("MYPROTO_INTERFACE", "127.0.0.1")
TCP_PORT = int(os.environ.get("MYPROTO_TCP_PORT", "11211"))
TLS_PORT = int(os.environ.get("MYPROTO_TLS_PORT", "11212"))
TLS_KEY = os.environ.get("MYPROTO_TLS_KEY", "")
TLS_CERT = os.environ.get("MYPROTO_TLS_CERT", "")
TLS_DIR = os.environ.get("MYPROTO_TLS_DIR", "tls")
TLS_HOSTNAME = os.environ.get("MYPROTO_TLS_HOSTNAME", "localhost")
TLS_CA = os.environ.get("MYPROTO_TLS_CA", "")  # empty: no mutual TLS endpoint
MTLS_PORT = int(os.environ.get("MYPROTO_MTLS_PORT", "11213"))
MEMORY_LIMIT = int(os.environ.get("MYPROTO_MEMORY_LIMIT", "64"))  # megabytes

log = Logger(namespace="myproto.tac")

if not (TLS_KEY and TLS_CERT):
    keyPath, certPath = selfSignedCertificate(FilePath(TLS_DIR), TLS_HOSTNAME)
    TLS_KEY, TLS_CERT = keyPath.path, certPath.path
log.info("TLS key: {key}; TLS certificate: {cert}", key=TLS_KEY, cert=TLS_CERT)

LISTEN = [
    "tcp:{}:interface={}".format(TCP_PORT, quoteStringArgument(INTERFACE)),
    "ssl:{}:interface={}:privateKey={}:certKey={}".format(
        TLS_PORT,
        quoteStringArgument(INTERFACE),
        quoteStringArgument(TLS_KEY),
        quoteStringArgument(TLS_CERT),
    ),
]
if TLS_CA:
    LISTEN.append(
        "mtls:{}:interface={}:privateKey={}:certKey={}:caCerts={}".format(
            MTLS_PORT,
            quoteStringArgument(INTERFACE),
            quoteStringArgument(TLS_KEY),
            quoteStringArgument(TLS_CERT),
            quoteStringArgument(TLS_CA),
        )
    )

application = Application("myproto")
makeService({"memory-limit": MEMORY_LIMIT, "listen": LISTEN}).setServiceParent(
    application
)
