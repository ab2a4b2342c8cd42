"""
The entry point of C{twistd myproto}: its L{Options} and L{makeService}.

The options and their checks live in L{myproto.options}; what a server is
made of, in L{myproto.service}.  This module only joins them into the one
service C{twistd} (and C{python -m myproto}, and C{tac/myproto.tac}) runs.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.application.service import MultiService

from myproto.config import ServerSettings
from myproto.options import Options, settingsFromOptions
from myproto.service import buildServer

__all__ = ["Options", "makeService"]


def makeService(config: Mapping[str, Any], reactor: Any = None) -> MultiService:
    """
    Build the whole server as one service.

    @param config: parsed L{Options}, or a plain mapping with the same keys
        (see L{settingsFromOptions}).
    @param reactor: the reactor to listen with and the clock for the store
        and the sweep; the global reactor if L{None}.

    @return: a service whose children are every service
        L{myproto.service.buildServer} makes, process-wide ones included, in
        its order (L{myproto.service.ServerParts.services}): with a snapshot
        file a service named C{"snapshot"}, the signal handlers and the
        garbage-collector freeze, C{"drain"}, C{"sweeper"} (the store's
        C{sweepExpired} every second), C{"evictions"} (a summary every
        L{myproto.evictions.SUMMARY_INTERVAL} seconds), with C{--metrics}
        C{"metrics"} serving C{/metrics}, then one listening service per
        endpoint and, with C{mtls:} endpoints, last, a
        L{myproto.service.ReloadCertificatesOnSignal}.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = config.get("settings")
    if not isinstance(settings, ServerSettings):
        settings = settingsFromOptions(config)
    top = MultiService()
    for service in buildServer(settings, reactor).services:
        service.setServiceParent(top)
    return top
