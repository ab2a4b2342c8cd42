"""
The C{mtls:} server endpoint: TLS with client certificates (mutual TLS) and
certificates that reload without a restart. See L{myproto.tls}.

Twisted finds endpoint parsers among its plugins, as it finds C{twistd}
plugins; this module only names one.
"""

from myproto.tls import TLSServerParser

mtlsServerParser = TLSServerParser()
