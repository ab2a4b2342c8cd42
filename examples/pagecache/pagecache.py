"""
Rendered pages, cached in memcached so that each is rendered once.
"""

from __future__ import annotations

from typing import Callable

from pymemcache.client.base import Client

# How long a cached page stays, in seconds.
PAGE_LIFETIME = 300


class PageCache:
    """
    Renders pages on demand and keeps them in a memcached server.

    @ivar renders: how many pages were rendered (cache misses).
    """

    def __init__(self, client: Client, render: Callable[[str], str]) -> None:
        """
        @param client: a memcached client.
        @param render: makes the HTML of the page at a path.
        """
        self._client = client
        self._render = render
        self.renders = 0

    def page(self, path: str) -> str:
        """
        @return: the page at C{path}, from the cache if it is there.
        """
        key = "page:" + path
        cached = self._client.get(key)
        if cached is not None:
            return cached.decode("utf-8")
        html = self._render(path)
        self.renders += 1
        self._client.set(key, html.encode("utf-8"), expire=PAGE_LIFETIME)
        return html

    def invalidate(self, path: str) -> None:
        """
        Forget the cached copy of the page at C{path}.
        """
        self._client.delete("page:" + path)
