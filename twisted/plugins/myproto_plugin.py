"""
The C{twistd myproto} plugin.

This file is named C{myproto_plugin.py}, not C{myproto.py}, so that it never
shadows the L{myproto} package. There is no C{__init__.py} in C{twisted/} or
C{twisted/plugins/}: Twisted finds plugins in every C{twisted/plugins}
directory on the path.
"""

from twisted.application.service import ServiceMaker

myproto = ServiceMaker(
    "myproto", "myproto.tap", "A memcached-compatible cache server.", "myproto"
)
