"""
The entry point of C{twistd myproto}: its L{Options} and L{makeService}.

The options and their checks live in L{myproto.options}; what a server is
made of, in L{myproto.service}.  This module only joins them into the one
service C{twistd} (and C{python -m myproto}, and C{tac/myproto.tac}) runs.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from myproto.config import MEGABYTE, ServerSettings
from myproto.options import Options, settingsFromOptions, versionLine
from myproto.service import ListeningService, buildServer

#: Names the file of listening ports to write, as memcached's does.
PORTS_FILE_VARIABLE = "MEMCACHED_PORT_FILENAME"


class ServerService(MultiService):
    """
    The whole server: logs what it is and where it listens as it starts,
    and, asked to, turns a port that cannot be listened on into one line and
    exit status 1 rather than a traceback.

    @ivar settings: what the server runs with.
    @ivar notes: options accepted and not acted on, to log.
    @ivar exitOnListenFailure: whether a L{CannotListenError} ends the
        process (C{twistd -n}); otherwise it is raised (C{twistd} reports
        it for a daemon, and C{python -m myproto} itself).
    """

    log = Logger()

    def __init__(
        self,
        settings: ServerSettings,
        notes: list[str],
        exitOnListenFailure: bool = False,
        portsFile: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.notes = notes
        self.exitOnListenFailure = exitOnListenFailure
        self.portsFile = portsFile

    def privilegedStartService(self) -> None:
        # Said before the ports are bound, so that it comes first in the log.
        settings = self.settings
        self.log.info(
            "{version}: listening on {addresses}; memory limit {memory} megabytes,"
            " item size limit {itemSize} bytes",
            version=versionLine(),
            addresses=", ".join(settings.endpoints),
            memory=settings.memoryLimit // MEGABYTE,
            itemSize=settings.maxItemSize,
        )
        for note in self.notes:
            self.log.info("{note}", note=note)
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            if not self.exitOnListenFailure:
                raise
            raise SystemExit("myproto: {}".format(error)) from None
        if self.portsFile is not None:
            ports = [child.port for child in self if isinstance(child, ListeningService)]
            writePortsFile(self.portsFile, ports)


def writePortsFile(path: str, ports: list[Any]) -> None:
    """
    Write the file memcached writes when C{MEMCACHED_PORT_FILENAME} names
    one: a C{TCP INET: PORT} (or C{INET6}) line per TCP port, in listening
    order, written to C{PATH.lck} and renamed, so that a reader that sees
    the file sees it whole.  Test harnesses read it to learn the ports of
    C{-p -1}.

    @param ports: the listening ports (L{None} for one not listening).
    """
    lines = []
    for port in ports:
        host = port.getHost() if port is not None else None
        if isinstance(host, (IPv4Address, IPv6Address)) and host.type == "TCP":
            family = "INET" if isinstance(host, IPv4Address) else "INET6"
            lines.append("TCP {}: {}\n".format(family, host.port))
    temporary = path + ".lck"
    try:
        with open(temporary, "a") as file:
            file.writelines(lines)
        os.replace(temporary, path)
    except OSError as error:
        # memcached says so and serves on.
        ServerService.log.error(
            "Failed to write the ports file {path}: {why}", path=temporary, why=error.strerror
        )

def startupNotes(config: Mapping[str, Any], settings: ServerSettings) -> list[str]:
    """
    Say which of memcached's options were accepted but are not acted on.

    @return: one line for each.
    """
    notes = ["Ignoring {}: it has no meaning here".format(option) for option in config.get("ignored", ())]
    if settings.udpPort and settings.listening.tcpPort is None:
        notes.append("UDP needs a TCP listener: ignoring -U {}".format(settings.udpPort))
    elif settings.udpPort:
        notes.append("Serving memcached's UDP protocol on udp:{}:interface={}".format(
            settings.udpPort, settings.listening.interface or "0.0.0.0"))
    if settings.threads != ServerSettings.threads:
        notes.append(
            "One reactor thread serves: -t {0} noted; for {0} processes, one"
            " per core, run twistd myproto-pool --workers {0}".format(settings.threads)
        )
    if config.get("tls") and not config.get("enable-ssl"):
        notes.append("Ignoring -o ssl_*: TLS is off without -Z")
    return notes

__all__ = ["Options", "ServerService", "makeService"]


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
    # Under twistd, the options' parent is twistd's: with -n, a port in use
    # is one line and status 1; a daemon's failure twistd reports itself.
    parent = getattr(config, "parent", None)
    top = ServerService(
        settings,
        startupNotes(config, settings),
        exitOnListenFailure=parent is not None and bool(parent.get("nodaemon")),
        # As memcached: with -s, no ports file.
        portsFile=None if config.get("unix-socket") else os.environ.get(PORTS_FILE_VARIABLE),
    )
    for service in buildServer(settings, reactor).services:
        service.setServiceParent(top)
    return top
