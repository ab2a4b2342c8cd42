"""
myproto: a memcached-compatible cache server built on Twisted.

Run it with C{twistd myproto} (see L{myproto.tap}) or with the application
file C{tac/myproto.tac}.
"""

__version__ = "0.1.0"
