"""
The C{twistd myproto-pool} plugin: several myproto processes, supervised,
with twemproxy in front (see L{myproto.pool}).
"""

from twisted.application.service import ServiceMaker

myprotoPool = ServiceMaker(
    "myproto-pool",
    "myproto.pool",
    "A pool of myproto worker processes, one per core, with twemproxy in front.",
    "myproto-pool",
)
