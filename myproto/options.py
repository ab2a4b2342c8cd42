"""
The command line of C{twistd myproto}, and the checks that turn it into
L{ServerSettings}.

L{Options} takes memcached 1.6.18's option names and meanings (C{-p}, C{-l},
C{-s}, C{-a}, C{-U}, C{-m}, C{-I}, C{-c}, C{-b}, C{-Z}, C{-o}...), plus
Twisted endpoint descriptions in C{--listen}, the two connection timeouts,
snapshots and metrics.

What tells a C{-l}/C{--listen} value apart: a comma-separated list of IP
addresses, each optionally with C{:PORT} (C{[ADDRESS]:PORT} for IPv6) and
memcached's C{notls:} prefix, is memcached's interface list (C{localhost}
counts as C{127.0.0.1}); anything else is a Twisted endpoint description
(C{tcp:11311}, C{unix:m.sock}, C{ssl:...}, C{mtls:...}), which must parse.
So C{::1}, C{[::1]:11311} and C{127.0.0.1,10.0.0.1} are interfaces, and
C{tcp:11311} and C{foo:1} are descriptions (the latter a bad one).
L{settingsFromOptions} turns parsed options, or a plain mapping written by
hand in a C{.tac} file, into a L{ServerSettings}.  What is built from the
settings is L{myproto.service}'s business.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping


from twisted.python import usage
from twisted.python.filepath import FilePath

from myproto.auth import parseAuthFile
from myproto import __version__
from myproto.cache import PROTOCOL_VERSION
from myproto.config import (
    DEFAULT_BACKLOG,
    DEFAULT_LISTEN,
    DEFAULT_UNIX_MODE,
    MEGABYTE,
    ServerSettings,
)
from myproto.optionvalues import (
    MAX_ITEM_SIZE,
    MIN_ITEM_SIZE,
    toBanner,
    toSize,
    parseFactor,
    parseInteger,
    parseMask,
    parseProtocol,
    parseSeconds,
    parseSize,
    parseSnapshotInterval,
)
from myproto.wire.numbers import strtoul
from myproto.endpoints import (
    TLS_SUBOPTIONS,
    checkEndpoint,
    memcachedEndpoints,
    parseInterfaces,
)


DEFAULT_MEMORY_LIMIT = 64  # megabytes, as memcached's -m
DEFAULT_MAX_ITEM_SIZE = "1m"
DEFAULT_CONNECTION_LIMIT = 1024
DEFAULT_IDLE_TIMEOUT = 0.0  # never
DEFAULT_REQUEST_TIMEOUT = ServerSettings.requestTimeout

# memcached 1.6.18's other -o keys: accepted, and logged as ignored.  Any
# other key is refused, as memcached refuses it.
IGNORED_SUBOPTIONS = frozenset(
    """maxconns_fast no_maxconns_fast hashpower no_hashexpand slab_reassign
    no_slab_reassign slab_automove no_slab_automove slab_automove_ratio
    slab_automove_window slab_automove_freeratio tail_repair_time
    hash_algorithm lru_segmented
    hot_lru_pct warm_lru_pct hot_max_factor warm_max_factor temporary_ttl
    watcher_logbuf_size worker_logbuf_size slab_sizes slab_chunk_max
    inline_ascii_resp no_inline_ascii_resp modern no_modern
    no_chunked_items drop_privileges no_drop_privileges resp_obj_mem_limit
    read_buf_mem_limit sock_cookie_id ssl_keyformat ssl_ciphers ssl_wbuf_size
    ssl_session_cache ssl_kernel_tls relaxed_privileges""".split()
)

# memcached's -o switches of its LRU crawler and maintainer.
_LRU_SWITCHES = {
    "lru_crawler": ("lru-crawler", True),
    "no_lru_crawler": ("lru-crawler", False),
    "lru_maintainer": ("lru-maintainer", True),
    "no_lru_maintainer": ("lru-maintainer", False),
}


def _crawlerSetting(key: str, argument: str | None) -> int:
    """
    Read memcached's C{-o lru_crawler_sleep} (C{atoi}, 0 to 1000000) or
    C{-o lru_crawler_tocrawl} (an unsigned 32-bit number).

    @raise usage.UsageError: in memcached's words.
    """
    if argument is None:
        raise usage.UsageError("Missing {} value".format(key))
    if key == "lru_crawler_sleep":
        leading = re.match(r"\s*[-+]?\d+", argument)
        value = int(leading.group()) if leading else 0
        if not 0 <= value <= 1000000:
            raise usage.UsageError("LRU crawler sleep must be between 0 and 1 second")
        return value
    number = strtoul(argument.encode("utf-8", "replace"))
    if number is None:
        raise usage.UsageError("lru_crawler_tocrawl takes a numeric 32bit value")
    return number


def _isCurrentUser(name: str) -> bool:
    """
    Whether C{name} is the user this process runs as: memcached's C{-u}
    then changes nothing, and memcached's own tests pass C{-u root} as root.
    """
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid == os.getuid()
    except KeyError:
        return False


# memcached's bounds for -I.
def _readCredentials(path: str, what: str = "auth file") -> tuple[tuple[bytes, bytes], ...]:
    """
    Read memcached's C{-Y} file of C{username:password} lines, once, at
    startup.

    @param path: the file's name.
    @param what: what the file is, for the messages.

    @return: the accepted C{(username, password)} pairs.

    @raise ValueError: if the file cannot be read or is not such a file.
    """
    try:
        content = FilePath(path).getContent()
    except OSError as e:
        raise ValueError(
            "Could not read the {} {}: {}".format(what, path, e.strerror)
        ) from None
    try:
        return parseAuthFile(content.splitlines(keepends=True))
    except ValueError as e:
        raise ValueError("Bad {} {}: {}".format(what, path, e)) from None


def _saslCredentials(config: Mapping[str, Any]) -> tuple[tuple[bytes, bytes], ...] | None:
    """
    Read the users of SASL: memcached asks Cyrus SASL for them, myproto
    reads C{--sasl-file}, a file of C{username:password} lines as C{-Y}'s.

    @return: the accepted pairs, or L{None} without C{-S}.

    @raise ValueError: for C{-S} without C{--sasl-file} or the reverse (on
        its own, neither would do what it seems to), or a bad file.
    """
    enabled = bool(config.get("enable-sasl"))
    path = config.get("sasl-file")
    if not enabled and not path:
        return None
    if not path:
        raise ValueError("-S needs --sasl-file FILE, a file of username:password lines")
    if not enabled:
        raise ValueError("--sasl-file is read only with -S (SASL on)")
    return _readCredentials(path, "SASL file")


def versionLine() -> str:
    """
    @return: what C{-V} prints: myproto's version and memcached's it speaks.
    """
    return "myproto {} (memcached {})".format(__version__, PROTOCOL_VERSION.decode("ascii"))


def settingsFromOptions(config: Mapping[str, Any]) -> ServerSettings:
    """
    Check a server configuration and gather it into one L{ServerSettings}.

    C{config} uses L{Options}' keys; any key it lacks takes memcached's
    default, so a C{.tac} file can give a plain L{dict} with only the keys
    it cares about. Sizes may be bytes or strings such as C{"1m"}.

    @param config: the parsed L{Options}, or a mapping with the same keys.

    @return: the settings.

    @raise ValueError: if a value is out of range; the message says which,
        in memcached's words where memcached has some.
    """
    memoryLimit = int(config.get("memory-limit", DEFAULT_MEMORY_LIMIT))
    if memoryLimit < 1:
        raise ValueError("The memory limit must be at least 1 megabyte")
    memoryBytes = memoryLimit * MEGABYTE
    maxItemSize = toSize(config.get("max-item-size", DEFAULT_MAX_ITEM_SIZE))
    if maxItemSize < MIN_ITEM_SIZE:
        raise ValueError("Item max size cannot be less than 1024 bytes.")
    if maxItemSize > MAX_ITEM_SIZE:
        raise ValueError("Cannot set item size limit higher than a gigabyte.")
    if maxItemSize > memoryBytes // 2:
        raise ValueError("Cannot set item size limit higher than 1/2 of memory max.")
    connectionLimit = int(config.get("conn-limit", DEFAULT_CONNECTION_LIMIT))
    if connectionLimit < 1:
        raise ValueError("Maximum connections must be greater than 0")
    idleTimeout = float(config.get("idle-timeout", DEFAULT_IDLE_TIMEOUT))
    requestTimeout = float(config.get("request-timeout", DEFAULT_REQUEST_TIMEOUT))
    if idleTimeout < 0 or requestTimeout < 0:
        raise ValueError("Timeouts cannot be negative")
    snapshotInterval = float(config.get("snapshot-interval", ServerSettings.snapshotInterval))
    if snapshotInterval < 0:
        raise ValueError("The snapshot interval cannot be negative")
    authFile = config.get("auth-file")
    credentials = _readCredentials(authFile) if authFile else None
    saslCredentials = _saslCredentials(config)
    if authFile and int(config.get("udp-port", 0)):
        raise ValueError("Cannot use UDP with ascii authentication enabled (-U 0 to disable)")
    listen = tuple(config.get("listen") or ()) + tuple(memcachedEndpoints(config))
    backlog = int(config.get("listen-backlog", DEFAULT_BACKLOG))
    if backlog < 1:
        raise ValueError("The listen backlog must be at least 1")
    mask = config.get("unix-mask", DEFAULT_UNIX_MODE)
    # memcached's -S alone means -B binary; -B ascii or auto with it is refused.
    protocol = parseProtocol(config.get("protocol") or ("auto" if saslCredentials is None else "binary"))
    if saslCredentials is not None and int(config.get("udp-port", 0)):
        raise ValueError("Cannot enable UDP while using binary SASL authentication.")
    # memcached's -t, -R, -n and -D checks, in its words.
    threads = int(config.get("threads", ServerSettings.threads))
    if threads < 1:
        raise ValueError("Number of threads must be greater than 0")
    requestsPerEvent = int(config.get("max-reqs-per-event", ServerSettings.maxRequestsPerEvent))
    if requestsPerEvent < 1:
        raise ValueError("Number of requests per event must be greater than 0")
    chunkSizeMin = int(config.get("slab-min-size", ServerSettings.chunkSizeMin))
    if chunkSizeMin < 1:
        raise ValueError("Chunk size must be greater than 0")
    delimiter = str(config.get("prefix-delimiter", ServerSettings.detailDelimiter))
    if not delimiter:
        raise ValueError("No delimiter specified")
    if not delimiter[0].isascii():
        raise ValueError("The -D delimiter must be an ASCII character")
    return ServerSettings(
        memoryLimit=memoryBytes,
        maxItemSize=maxItemSize,
        connectionLimit=connectionLimit,
        useCas=not config.get("disable-cas", False),
        enableShutdown=bool(config.get("enable-shutdown", False)),
        banner=toBanner(config.get("banner")),
        verbosity=int(config.get("verbose", 0)),
        listen=listen or (DEFAULT_LISTEN,),
        idleTimeout=idleTimeout,
        requestTimeout=requestTimeout,
        credentials=credentials,
        saslCredentials=saslCredentials,
        snapshotPath=config.get("snapshot") or None,
        snapshotInterval=snapshotInterval,
        metrics=config.get("metrics") or None,
        dashboardValues=bool(config.get("dashboard-values", False)),
        listenBacklog=backlog,
        unixMask=parseMask(mask) if isinstance(mask, str) else int(mask),
        udpPort=int(config.get("udp-port", 0)),
        threads=threads,
        protocol=protocol,
        maxRequestsPerEvent=requestsPerEvent,
        evictions=not config.get("disable-evictions", False),
        flushEnabled=not config.get("disable-flush-all", False),
        dumpEnabled=not config.get("disable-dumping", False),
        watchEnabled=not config.get("disable-watch", False),
        # memcached takes the first character.
        detailDelimiter=delimiter[0],
        growthFactor=float(config.get("slab-growth-factor", ServerSettings.growthFactor)),
        chunkSizeMin=chunkSizeMin,
        lruCrawler=bool(config.get("lru-crawler", True)),
        lruMaintainer=bool(config.get("lru-maintainer", True)),
        crawlerSleep=int(config.get("lru_crawler_sleep", ServerSettings.crawlerSleep)),
        crawlerToCrawl=int(config.get("lru_crawler_tocrawl", ServerSettings.crawlerToCrawl)),
        trackSizes=bool(config.get("track-sizes", False)),
    )


class Options(usage.Options):
    """
    The options of C{twistd myproto}, named and meant as memcached's.

    After L{parseOptions}, C{self["settings"]} holds the checked
    L{ServerSettings}.
    """

    synopsis = "[options]"
    # How the program is called, in messages.
    program = "twistd myproto"
    longdesc = (
        "Serve a memcached-compatible cache. memcached's options mean what they"
        " mean to memcached 1.6.18, but that with no -l the interface is"
        " 127.0.0.1. A -l/--listen value that is a comma-separated list of IP"
        " addresses (each perhaps ADDRESS:PORT, [IPV6]:PORT, notls:...) is"
        " memcached's interface list; anything else is a Twisted endpoint"
        " description (default: "
        + DEFAULT_LISTEN
        + "). For TLS, give -Z -o ssl_chain_cert=CERT.pem,ssl_key=KEY.pem, or listen on"
        " ssl:PORT:interface=ADDRESS:privateKey=KEY.pem:certKey=CERT.pem;"
        " for mutual TLS, on mtls:PORT:interface=ADDRESS:privateKey=KEY.pem"
        ":certKey=CERT.pem:caCerts=CA.pem (refresh_certs and SIGHUP reload"
        " its files)."
    )

    optFlags = [
        [
            "disable-cas",
            "C",
            "Disable use of CAS: items carry no CAS unique (memcached -C).",
        ],
        [
            "enable-shutdown",
            "A",
            "Enable the ascii 'shutdown' command (memcached -A).",
        ],
        ["disable-evictions", "M", "Keep items when memory is full: refuse to store (memcached -M)."],
        ["disable-flush-all", "F", "Disable the flush_all command (memcached -F)."],
        ["disable-dumping", "X", "Disable stats cachedump and lru_crawler metadump (memcached -X)."],
        ["disable-watch", "W", "Disable the watch commands (memcached -W)."],
        ["dashboard-values", None, "Let the --metrics dashboard's key browser show values (they may be secrets)."],
        ["enable-ssl", "Z", "Serve TLS on the TCP listeners; see -o ssl_* (memcached -Z)."],
        ["daemon", "d", "Run as a daemon: only under twistd, which does it unless -n."],
        ["enable-coredumps", "r", "Accepted and ignored (memcached -r)."],
        ["lock-memory", "k", "Accepted and ignored (memcached -k)."],
        ["enable-largepages", "L", "Accepted and ignored (memcached -L)."],
        ["enable-sasl", "S", "SASL PLAIN authentication on the binary protocol, users from --sasl-file (memcached -S)."],
    ]

    optParameters = [
        ["port", "p", None, "TCP port to listen on; 0 is none [default: 11211] (memcached -p).", parseInteger],
        ["unix-socket", "s", None, "Unix socket to listen on, and no TCP (memcached -s)."],
        ["unix-mask", "a", "700", "Access mask of Unix sockets, in octal (memcached -a).", parseMask],
        ["udp-port", "U", 0, "UDP port, on the first TCP interface; 0 is off (memcached -U).", parseInteger],
        ["listen-backlog", "b", DEFAULT_BACKLOG, "Listen backlog queue limit (memcached -b).", parseInteger],
        ["threads", "t", ServerSettings.threads, "Accepted: one reactor thread serves; twistd myproto-pool --workers N runs N processes (memcached -t).", parseInteger],
        ["protocol", "B", None, "ascii, binary or auto: detected on each connection's first byte [default: auto; binary with -S] (memcached -B).", parseProtocol],
        ["max-reqs-per-event", "R", ServerSettings.maxRequestsPerEvent, "Commands carried out per read before the replies are written, counted in conn_yields (memcached -R).", parseInteger],
        ["prefix-delimiter", "D", ServerSettings.detailDelimiter, "Key prefix delimiter of stats detail (memcached -D)."],
        ["slab-growth-factor", "f", ServerSettings.growthFactor, "Slab chunk size growth factor (memcached -f).", parseFactor],
        ["slab-min-size", "n", ServerSettings.chunkSizeMin, "Smallest chunk for key, value and flags (memcached -n).", parseInteger],
        ["user", "u", None, "Under twistd, its -u; else accepted only when not root (memcached -u)."],
        ["pidfile", "P", None, "Under twistd, its --pidfile (memcached -P)."],
        ["memory-file", "e", None, "Accepted and ignored: --snapshot FILE keeps the cache across restarts (memcached -e)."],
        ["napi_ids", "N", None, "Accepted and ignored (memcached -N).", parseInteger],
        [
            "memory-limit",
            "m",
            DEFAULT_MEMORY_LIMIT,
            "Item memory in megabytes (memcached -m).",
            parseInteger,
        ],
        [
            "max-item-size",
            "I",
            DEFAULT_MAX_ITEM_SIZE,
            "Largest item (memcached -I).",
            parseSize,
        ],
        [
            "conn-limit",
            "c",
            DEFAULT_CONNECTION_LIMIT,
            "Max simultaneous connections (memcached -c).",
            parseInteger,
        ],
        [
            "banner",
            None,
            None,
            "A line sent to each client when it connects (default: none)."
            " memcached sends none, and standard clients take it for the reply"
            " to their first command and fail (pymemcache raises).",
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Drop a client that completes no command for this long"
            " (memcached -o idle_timeout).",
            parseSeconds,
        ],
        [
            "request-timeout",
            None,
            DEFAULT_REQUEST_TIMEOUT,
            "Drop a client that takes longer than this to finish a command"
            " line or data block it has started.",
            parseSeconds,
        ],
        [
            "snapshot",
            None,
            None,
            "Save the cache to this file at shutdown (and periodically) and"
            " load it at start.",
        ],
        [
            "snapshot-interval",
            None,
            ServerSettings.snapshotInterval,
            "Seconds between snapshot saves while serving; the cache is also saved"
            " at shutdown.",
            parseSnapshotInterval,
        ],
        [
            "auth-file",
            "Y",
            None,
            "A file of username:password lines; clients must then"
            " authenticate (memcached -Y).",
        ],
        [
            "sasl-file",
            None,
            None,
            "With -S: a file of username:password lines, the users SASL PLAIN accepts.",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics and the live dashboard at / on"
            " this endpoint, e.g. tcp:9150 (loopback unless it names an interface;"
            " default: none).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["interfaces"] = []
        self["verbose"] = 0
        self["tls"] = {}
        self["ignored"] = []

    # The opt_ docstrings are --help text; they stay on one line because
    # usage.Options would keep a second line's indentation.

    def opt_listen(self, value: str) -> None:
        """Interfaces as memcached's -l (127.0.0.1,[::1]:11311) or an endpoint: tcp:11311, unix:m.sock (repeatable)."""
        if parseInterfaces(value) is None:
            self["listen"].append(value)
        else:
            self["interfaces"].append(value)

    opt_l = opt_listen

    def opt_verbose(self) -> None:
        """Raise the starting verbosity level; repeat for more: -vv (memcached -v)."""
        self["verbose"] += 1

    opt_v = opt_verbose

    def opt_version(self) -> None:
        """Print myproto's version and the memcached version it speaks, and exit."""
        print(versionLine())
        sys.exit(0)

    opt_V = opt_version

    def opt_license(self) -> None:
        """Print myproto's license and exit (memcached -i)."""
        print("myproto {} is MIT-licensed: see the LICENSE file of its source.".format(__version__))
        sys.exit(0)

    opt_i = opt_license
    opt_h = usage.Options.opt_help

    def opt_extended(self, value: str) -> None:
        """memcached's -o list: idle_timeout=S, ssl_chain_cert=F, ssl_key=F, ssl_ca_cert=F, ssl_verify_mode=N, ssl_min_version=N; others ignored (repeatable)."""
        for item in value.split(","):
            key, equals, argument = item.strip().partition("=")
            if key == "idle_timeout":
                try:
                    self["idle-timeout"] = parseSeconds(argument)
                except ValueError as e:
                    raise usage.UsageError("idle_timeout: {}".format(e)) from None
            elif key in TLS_SUBOPTIONS:
                self["tls"][key] = argument
            elif key in _LRU_SWITCHES:
                name, value = _LRU_SWITCHES[key]
                self[name] = value
            elif key == "track_sizes":
                self["track-sizes"] = True
            elif key in ("lru_crawler_sleep", "lru_crawler_tocrawl"):
                self[key] = _crawlerSetting(key, argument if equals else None)
            elif key in IGNORED_SUBOPTIONS or key.startswith("ext_"):
                self["ignored"].append("-o " + item.strip())
            elif key:
                raise usage.UsageError('Illegal suboption "{}"'.format(item.strip()))

    opt_o = opt_extended

    def _processOptions(self) -> None:
        """
        Map memcached's process options onto twistd's, or refuse them with
        the reason; note the options accepted and ignored.

        @raise usage.UsageError: for one this program cannot honour.
        """
        parent = getattr(self, "parent", None)
        if self["daemon"]:
            if parent is None:
                raise usage.UsageError(
                    "-d: {} runs in the foreground; to run as a daemon, use"
                    " twistd myproto (without -n)".format(self.program)
                )
            if parent.get("nodaemon"):
                raise usage.UsageError(
                    "-d asks for a daemon and twistd's -n for none: leave one out"
                )
        if self["pidfile"]:
            if parent is not None:
                parent["pidfile"] = os.path.abspath(self["pidfile"])
            else:
                # memcached writes it only with -d, which is refused here.
                self["ignored"].append("-P " + self["pidfile"])
        if self["user"]:
            if parent is not None and hasattr(parent, "opt_uid"):
                parent.opt_uid(self["user"])
            elif hasattr(os, "getuid") and os.getuid() == 0 and not _isCurrentUser(self["user"]):
                raise usage.UsageError(
                    "-u: {} cannot change user; run twistd -u {} myproto, or"
                    " start it as that user".format(self.program, self["user"])
                )
            else:
                # memcached, too, takes -u only when run as root.
                self["ignored"].append("-u " + self["user"])
        if self["memory-file"]:
            self["ignored"].append("-e " + self["memory-file"])
        if self["napi_ids"] is not None:
            if self["napi_ids"] < 1:
                raise usage.UsageError("Maximum number of NAPI IDs must be greater than 0")
            self["ignored"].append("-N {}".format(self["napi_ids"]))
        for flag, short in [
            ("enable-coredumps", "-r"),
            ("lock-memory", "-k"),
            ("enable-largepages", "-L"),
        ]:
            if self[flag]:
                self["ignored"].append(short)

    def postOptions(self) -> None:
        """
        Fill in the default endpoint and check the values together.

        @raise usage.UsageError: if a value is out of range.
        """
        self._processOptions()
        try:
            settings = settingsFromOptions(self)
            for given, description in zip(settings.listen, settings.endpoints):
                checkEndpoint(description, given)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["listen"] = list(settings.listen)
        self["max-item-size"] = settings.maxItemSize
        self["settings"] = settings
