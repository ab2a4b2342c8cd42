"""
myproto: a memcached-compatible cache server built on Twisted.

Run it with C{twistd myproto} (see L{myproto.tap}), C{python -m myproto}, the
application file C{tac/myproto.tac}, or inside a program with
L{myproto.embedded.serve}; L{myproto.testing} gives tests a server.
"""

__version__ = "0.1.0"
