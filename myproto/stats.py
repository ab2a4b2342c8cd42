"""
Server-wide counters, named after the memcached statistics they feed.
"""

from __future__ import annotations


class ServerStats:
    """
    Counters of commands and connections.  Item counters live with the
    items, in L{myproto.store.StoreStats}.
    """

    __slots__ = (
        "currConnections",
        "totalConnections",
        "rejectedConnections",
        "cmdGet",
        "cmdSet",
        "cmdFlush",
        "cmdTouch",
        "cmdMeta",
        "getHits",
        "getMisses",
        "deleteHits",
        "deleteMisses",
        "incrHits",
        "incrMisses",
        "decrHits",
        "decrMisses",
        "casHits",
        "casMisses",
        "casBadval",
        "touchHits",
        "touchMisses",
        "storeTooLarge",
        "storeNoMemory",
        "authCmds",
        "authErrors",
        "bytesRead",
        "bytesWritten",
    )

    # Gauges that "stats reset" leaves alone.
    _gauges = frozenset(["currConnections"])

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def reset(self) -> None:
        """
        Zero every counter, as C{stats reset} does, keeping gauges.
        """
        for name in self.__slots__:
            if name not in self._gauges:
                setattr(self, name, 0)
