"""
The live dashboard: the C{--metrics} endpoint serves, beside C{/metrics},
a page at C{/} and its JSON at C{/api/...}, with twisted.web.

    GET /                 the page (C{dashboard.html}, shipped in the package)
    GET /api/overview     the figures (L{myproto.figures.overview});
                          C{history=N} asks for the last N seconds (0-300)
    GET /api/keys         the key browser: C{q} (at most 250 bytes), C{mode}
                          (C{prefix} or C{substring}), C{page} (from 0)
    GET /api/value        one value, with C{--dashboard-values} only: C{key},
                          URI-encoded as the key browser gives it

Everything is read-only.  Searches walk the items one batch per reactor turn
(L{myproto.browse.KeySearch}), as does the slab-class size count (every few
seconds while the page is open), through a
L{Cooperator} that runs one step per turn, so a large cache never stalls the
clients.  With C{-Y} the page and API ask for HTTP Basic authentication
against the same users (failures are counted in C{auth_errors} and logged);
C{/metrics} stays open, as before.  Bad parameters get a 400 with a short
reason, in JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import b64encode
from importlib import resources
from typing import Any, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Cooperator, LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from myproto.auth import checkCredentials
from myproto.browse import (
    MAX_KEY_LENGTH,
    MODES,
    PAGE_SIZE,
    PREFIX,
    KeySearch,
    decodeKey,
    valueView,
)
from myproto.cache import Cache
from myproto.config import ServerSettings, splitDescription
from myproto.figures import HISTORY, Sampler, overview
from myproto.metrics import METRICS_PATH, MetricsResource, MetricsSite, enableTimings

log = Logger()

PAGE_FILE = "dashboard.html"
JSON_TYPE = b"application/json; charset=utf-8"
REALM = b"myproto"

# Seconds between two samples of the counters.  The item sizes are counted
# by a walk of every item, so less often, and only while someone looks: an
# overview older than this starts a new count.
SAMPLE_INTERVAL = 1.0
SIZES_INTERVAL = 5.0

# A new search for page 0 reuses a walk this recent; later pages reuse one
# this old, so paging through a large result does not walk again.
FRESH_SEARCH = 5.0
KEEP_SEARCH = 300.0

# Walks running at once; more get a 503.
MAX_SEARCHES = 4

# The highest page number accepted.
MAX_PAGE = 10**6

_DIGITS = re.compile(rb"[0-9]{1,7}\Z")

# The interface a TCP-based endpoint listens on when its description names
# none: loopback, not Twisted's every interface.
_LOCAL = {"tcp": "127.0.0.1", "ssl": "127.0.0.1", "mtls": "127.0.0.1", "tcp6": "\\:\\:1"}


def localByDefault(description: str) -> str:
    """
    @return: C{description}, with C{interface=} loopback added to a TCP, TLS
        or mutual TLS one that names no interface.
    """
    kind, positional, keywords = splitDescription(description)
    local = _LOCAL.get(kind.lower())
    if local is None or "interface" in keywords or len(positional) > 1:
        return description
    return description + ":interface=" + local


class BadRequest(Exception):
    """
    A request parameter is missing or wrong; the message says which and
    why.
    """


def parameters(request: Request, allowed: tuple[str, ...]) -> dict[str, bytes]:
    """
    @return: the query parameters, each given at most once and among
        C{allowed}.
    @raise BadRequest: otherwise.
    """
    found = {}
    for name, values in (request.args or {}).items():
        text = name.decode("latin-1")
        if text not in allowed:
            raise BadRequest("unknown parameter %r" % (text,))
        if len(values) != 1:
            raise BadRequest("%s given more than once" % (text,))
        found[text] = values[0]
    return found


def number(value: Optional[bytes], name: str, default: int, highest: int) -> int:
    """
    @return: C{value} as a whole number from 0 to C{highest}, or C{default}
        when absent.
    @raise BadRequest: for anything else.
    """
    if value is None:
        return default
    if not _DIGITS.match(value) or int(value) > highest:
        raise BadRequest("%s must be a whole number from 0 to %d" % (name, highest))
    return int(value)


def writeJSON(request: Request, value: object, code: int = http.OK) -> bytes:
    """
    Set the response up as JSON.

    @return: the body.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def writeError(request: Request, code: int, reason: str) -> bytes:
    return writeJSON(request, {"error": reason}, code)


class Dashboard:
    """
    The state behind the page: the sampler, the walks and the searches of
    one cache, and the timers that keep them.

    @ivar sampler: the counters' recent history.
    @ivar showValues: whether values may be shown (C{--dashboard-values}).
    """

    def __init__(self, cache: Cache, reactor: Any, showValues: bool = False) -> None:
        self.cache = cache
        self.reactor = reactor
        self.showValues = showValues
        self.sampler = Sampler(cache)
        # One step of one walk per reactor turn: each step is a batch of
        # items, and the clients' input is read between two.
        self.cooperator = self._cooperator()
        self._searches: dict[
            tuple[str, bytes], tuple[KeySearch, list[Deferred[KeySearch]], float]
        ] = {}
        self._sampling = LoopingCall(self.sampler.sample)
        self._sampling.clock = reactor
        self._sizeWalk: Optional[Deferred[Any]] = None

    def _cooperator(self) -> Cooperator:
        return Cooperator(
            terminationPredicateFactory=lambda: lambda: True,
            scheduler=lambda work: self.reactor.callLater(0, work),
        )

    def start(self) -> None:
        """
        Sample the counters every second.
        """
        self._sampling.start(SAMPLE_INTERVAL)

    def stop(self) -> None:
        """
        Stop the timers and any walk.
        """
        if self._sampling.running:
            self._sampling.stop()
        self.cooperator.stop()
        # A stopped cooperator takes no more work: one for a restart.
        self.cooperator = self._cooperator()
        self._searches.clear()

    def countSizes(self) -> None:
        """
        Start a walk counting items per slab class, unless one runs or the
        last count is recent.
        """
        sampler = self.sampler
        age = self.reactor.seconds() - sampler.sizesAt
        recent = sampler.sizes is not None and age < SIZES_INTERVAL
        if self._sizeWalk is None and not recent:
            done = self.cooperator.cooperate(self.sampler.sizeWalk()).whenDone()
            self._sizeWalk = done

            def finished(result: object) -> None:
                self._sizeWalk = None

            done.addBoth(finished)

    def search(self, query: bytes, mode: str, page: int) -> Deferred[KeySearch]:
        """
        Find the keys matching C{query}, walking the items unless a recent
        enough walk did.

        @return: a L{Deferred} that fires with the finished L{KeySearch}.
        @raise _Busy: when too many walks run already.
        """
        now = self.reactor.seconds()
        for key, (_, _, started) in list(self._searches.items()):
            if now - started > KEEP_SEARCH:
                del self._searches[key]
        found = self._searches.get((mode, query))
        if found is None or (
            page == 0 and found[0].keys is not None and now - found[2] > FRESH_SEARCH
        ):
            found = self._startSearch(query, mode, now)
        search, waiters, _ = found
        if search.keys is not None:
            return succeed(search)
        waiting: Deferred[KeySearch] = Deferred()
        waiters.append(waiting)
        return waiting

    def _startSearch(
        self, query: bytes, mode: str, now: float
    ) -> tuple[KeySearch, list[Deferred[KeySearch]], float]:
        if sum(1 for entry in self._searches.values() if entry[0].keys is None) >= MAX_SEARCHES:
            raise _Busy()
        while len(self._searches) >= MAX_SEARCHES * 2:
            oldest = min(self._searches, key=lambda key: self._searches[key][2])
            del self._searches[oldest]
        search = KeySearch(self.cache, query, mode)
        waiters: list[Deferred[KeySearch]] = []

        def finished(result: object) -> None:
            # Each waiting request gets the search, or the reason it stopped.
            for waiting in waiters:
                if isinstance(result, Failure):
                    waiting.errback(result)
                else:
                    waiting.callback(search)
            del waiters[:]

        self.cooperator.cooperate(search).whenDone().addBoth(finished)
        entry = (search, waiters, now)
        self._searches[(mode, query)] = entry
        return entry


class _Busy(Exception):
    """
    Too many searches run at once.
    """


class _Leaf(Resource):
    """
    An API route: a leaf answering C{GET} with JSON, a 400 for bad
    parameters, a 404 for any path below it.
    """

    isLeaf = True
    allowed: tuple[str, ...] = ()

    def __init__(self, dashboard: Dashboard) -> None:
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request: Request) -> Any:
        if request.postpath and request.postpath != [b""]:
            return writeError(request, http.NOT_FOUND, "no such resource")
        try:
            return self.answer(request, parameters(request, self.allowed))
        except BadRequest as e:
            return writeError(request, http.BAD_REQUEST, str(e))

    def answer(self, request: Request, given: dict[str, bytes]) -> Any:
        raise NotImplementedError()


class OverviewResource(_Leaf):
    """
    C{GET /api/overview?history=N}.
    """

    allowed = ("history",)

    def answer(self, request: Request, given: dict[str, bytes]) -> bytes:
        history = number(given.get("history"), "history", HISTORY, HISTORY)
        dashboard = self.dashboard
        dashboard.countSizes()
        return writeJSON(request, overview(dashboard.sampler, history, dashboard.showValues))


class KeysResource(_Leaf):
    """
    C{GET /api/keys?q=QUERY&mode=prefix|substring&page=N}.
    """

    allowed = ("q", "mode", "page")

    def answer(self, request: Request, given: dict[str, bytes]) -> Any:
        query = given.get("q", b"")
        if len(query) > MAX_KEY_LENGTH:
            raise BadRequest("q must be at most %d bytes" % (MAX_KEY_LENGTH,))
        mode = given.get("mode", PREFIX.encode("ascii")).decode("latin-1")
        if mode not in MODES:
            raise BadRequest("mode must be one of " + ", ".join(MODES))
        page = number(given.get("page"), "page", 0, MAX_PAGE)
        try:
            searched = self.dashboard.search(query, mode, page)
        except _Busy:
            return writeError(request, http.SERVICE_UNAVAILABLE, "too many searches running")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def found(search: KeySearch) -> None:
            if gone:
                return
            keys = search.keys or []
            body = writeJSON(
                request,
                {
                    "q": query.decode("utf-8", "backslashreplace"),
                    "mode": mode,
                    "page": page,
                    "pageSize": PAGE_SIZE,
                    "matches": len(keys),
                    "pages": max(1, -(-len(keys) // PAGE_SIZE)),
                    "examined": search.total,
                    "rows": search.page(page),
                },
            )
            request.write(body)
            request.finish()

        def stopped(reason: Failure) -> None:
            if not gone:
                request.write(writeError(request, http.SERVICE_UNAVAILABLE, "search stopped"))
                request.finish()

        searched.addCallbacks(found, stopped)
        return NOT_DONE_YET


class ValueResource(_Leaf):
    """
    C{GET /api/value?key=KEY}, with C{--dashboard-values} only.
    """

    allowed = ("key",)

    def answer(self, request: Request, given: dict[str, bytes]) -> bytes:
        encoded = given.get("key")
        if encoded is None:
            raise BadRequest("key is missing")
        key = decodeKey(encoded)
        if key is None:
            raise BadRequest("key must be 1 to %d bytes" % (MAX_KEY_LENGTH,))
        if not self.dashboard.showValues:
            return writeError(
                request, http.FORBIDDEN, "values are hidden: start with --dashboard-values"
            )
        cache = self.dashboard.cache
        item = cache.store.find(key)
        if item is None:
            return writeError(request, http.NOT_FOUND, "no such item")
        return writeJSON(request, valueView(cache, item))


class ApiResource(Resource):
    """
    C{/api/}: the routes, and a JSON 404 for anything else.
    """

    def __init__(self, dashboard: Dashboard) -> None:
        super().__init__()
        self.putChild(b"overview", OverviewResource(dashboard))
        self.putChild(b"keys", KeysResource(dashboard))
        self.putChild(b"value", ValueResource(dashboard))

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _NotFound()

    def render_GET(self, request: Request) -> bytes:
        return writeError(request, http.NOT_FOUND, "no such resource")


class _NotFound(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return writeError(request, http.NOT_FOUND, "no such resource")


def pageSource() -> bytes:
    """
    @return: the page, as shipped in the package.
    """
    return resources.files("myproto").joinpath(PAGE_FILE).read_bytes()


def scriptHash(page: bytes) -> bytes:
    """
    @return: the C{sha256-...} source of the page's one inline script, for
        its Content-Security-Policy.
    """
    match = re.search(rb"<script>(.*?)</script>", page, re.DOTALL)
    if match is None:
        raise ValueError("the page has no script")
    return b"sha256-" + b64encode(hashlib.sha256(match.group(1)).digest())


class PageResource(Resource):
    """
    C{GET /}: the page, which may run its own script and talk to this
    origin only.
    """

    isLeaf = True

    def __init__(self, page: bytes) -> None:
        super().__init__()
        self._page = page
        self._policy = (
            b"default-src 'none'; script-src '%s'; style-src 'unsafe-inline'; "
            b"img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            b"frame-ancestors 'none'" % (scriptHash(page),)
        )

    def render_GET(self, request: Request) -> bytes:
        if request.postpath and request.postpath != [b""]:
            return writeError(request, http.NOT_FOUND, "no such resource")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy", self._policy)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        return self._page


@implementer(ICredentialsChecker)
class UsersChecker:
    """
    Checks HTTP Basic credentials against C{-Y}'s users, in constant time
    (L{checkCredentials}); each failure is counted in C{auth_errors} and
    logged, without the password.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, credentials: tuple[tuple[bytes, bytes], ...], cache: Cache) -> None:
        self._credentials = credentials
        self._cache = cache

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        username, password = credentials.username, credentials.password
        if checkCredentials(self._credentials, username, password):
            return succeed(username)
        self._cache.stats.authErrors += 1
        log.warn(
            "Dashboard authentication failed for user {user!r}",
            user=username.decode("utf-8", "backslashreplace"),
        )
        return fail(UnauthorizedLogin())


@implementer(IRealm)
class _OneResource:
    def __init__(self, resource: Resource) -> None:
        self._resource = resource

    def requestAvatar(self, avatarId: bytes, mind: object, *interfaces: Any) -> Any:
        if IResource not in interfaces:
            raise NotImplementedError()
        return IResource, self._resource, lambda: None


def guarded(resource: Resource, checker: UsersChecker) -> Resource:
    """
    @return: C{resource} behind HTTP Basic authentication.
    """
    portal = Portal(_OneResource(resource), [checker])
    return HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(REALM)])


class DashboardSite(MetricsSite):
    """
    The endpoint's site: C{/metrics}, the page and its API; errors never
    show a traceback.
    """

    displayTracebacks = False


def dashboardSite(
    dashboard: Dashboard, credentials: Optional[tuple[tuple[bytes, bytes], ...]]
) -> DashboardSite:
    """
    @return: the site serving C{/metrics}, C{/} and C{/api/} for a
        dashboard's cache, whose commands are timed from now on.
    """
    enableTimings(dashboard.cache)
    root = Resource()
    root.putChild(METRICS_PATH, MetricsResource(dashboard.cache))
    page: Resource = PageResource(pageSource())
    api: Resource = ApiResource(dashboard)
    if credentials is not None:
        checker = UsersChecker(credentials, dashboard.cache)
        page, api = guarded(page, checker), guarded(api, checker)
    root.putChild(b"", page)
    root.putChild(b"index.html", page)
    root.putChild(b"api", api)
    return DashboardSite(root)


class DashboardService(StreamServerEndpointService):
    """
    Serves the site, and keeps the dashboard's timers while it does.
    """

    def __init__(self, endpoint: Any, site: DashboardSite, dashboard: Dashboard) -> None:
        super().__init__(endpoint, site)
        self.dashboard = dashboard

    def startService(self) -> None:
        super().startService()
        self.dashboard.start()

    def stopService(self) -> Any:
        self.dashboard.stop()
        return super().stopService()


def dashboardService(
    description: str, cache: Cache, settings: ServerSettings, reactor: Any
) -> DashboardService:
    """
    @param description: the endpoint to serve on (C{--metrics}); a TCP one
        that names no interface listens on loopback only.
    @return: a service serving C{/metrics}, the page and its API there.
    """
    dashboard = Dashboard(cache, reactor, settings.dashboardValues)
    site = dashboardSite(dashboard, settings.credentials)
    endpoint = serverFromString(reactor, localByDefault(description))
    return DashboardService(endpoint, site, dashboard)
