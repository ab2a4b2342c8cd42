"""
Which function carries out each request: tables by request type, which the
connection (L{myproto.connection}) reads.

Reply lines are bytes without their CRLF; a data block is one line of its
own.  Nothing here sees a transport or the reactor.
"""

from __future__ import annotations

from typing import Any, Callable

from myproto.cache import Cache, Lines
from myproto.commands import admin, arithmetic, crawler, items, retrieval, storage, tuning, watch
from myproto.errors import ClientError, ProtocolError
from myproto.wire import classic, meta
from myproto.wire import tuning as tuningWire

ADMITTERS: dict[type, Callable[[Any, Cache], Lines]] = {
    classic.StorageRequest: storage.admitStorage,
    meta.MetaSetRequest: storage.admitMetaSet,
    classic.AuthenticationRequest: storage.admitAuthentication,
}

COMPLETERS: dict[type, Callable[[Any, bytes, Cache], Lines]] = {
    classic.StorageRequest: storage.store,
    meta.MetaSetRequest: storage.metaSet,
    classic.AuthenticationRequest: storage.authenticate,
}

# The commands that need no data block, by request type.
HANDLERS: dict[type, Callable[[Any, Cache], Lines]] = {
    classic.RetrievalRequest: retrieval.retrieve,
    classic.DeleteRequest: items.delete,
    classic.ArithmeticRequest: arithmetic.arithmetic,
    classic.TouchRequest: retrieval.touch,
    classic.FlushRequest: items.flushAll,
    classic.VersionRequest: admin.version,
    classic.VerbosityRequest: admin.verbosity,
    classic.StatsRequest: admin.stats,
    classic.NoOpRequest: admin.noOp,
    classic.MemoryLimitRequest: admin.memoryLimit,
    classic.RefreshCertificatesRequest: admin.refreshCertificates,
    classic.SlabsAutomoveRequest: admin.slabsAutomove,
    tuningWire.SlabsAutomoveRatioRequest: tuning.slabsAutomoveRatio,
    tuningWire.SlabsReassignRequest: tuning.slabsReassign,
    tuningWire.LruRequest: tuning.lru,
    tuningWire.ExtstoreRequest: tuning.extstore,
    classic.WatchRequest: watch.watch,
    classic.LruCrawlerRequest: crawler.lruCrawler,
    meta.MetaGetRequest: retrieval.metaGet,
    meta.MetaDeleteRequest: items.metaDelete,
    meta.MetaArithmeticRequest: arithmetic.metaArithmetic,
    meta.MetaDebugRequest: items.metaDebug,
}

def badDataBlock(request: Any, cache: Cache) -> ProtocolError:
    """
    The error for a data block that does not end in CRLF.  memcached counts
    the attempt as a set all the same.

    @param request: the request the block belongs to.
    @param cache: what the command acts on.
    @return: the error to reply with.
    """
    if isinstance(request, classic.AuthenticationRequest):
        return ClientError(classic.BAD_AUTH_TERMINATION)
    cache.stats.cmdSet += 1
    return ClientError(classic.BAD_DATA_CHUNK)
