"""
PageCache against a real memcached-protocol server, provided by myproto's
pytest fixtures (installed with myproto; nothing to configure).
"""

import pytest
from pymemcache.client.base import Client

from pagecache import PageCache


def render(path: str) -> str:
    return "<h1>{}</h1>".format(path)


@pytest.fixture
def client(myproto_server):
    """A pymemcache client for a fresh, empty server."""
    client = Client(myproto_server.address, default_noreply=False)
    yield client
    client.close()


def test_renderedOnce(client):
    """A page is rendered on the first request and served from the cache after."""
    pages = PageCache(client, render)
    assert pages.page("/about") == "<h1>/about</h1>"
    assert pages.page("/about") == "<h1>/about</h1>"
    assert pages.renders == 1


def test_eachTestHasItsOwnServer(client):
    """A fresh server per test: nothing is left over from the test above."""
    pages = PageCache(client, render)
    pages.page("/about")
    assert pages.renders == 1


def test_invalidate(client):
    """After invalidate, the page is rendered again."""
    pages = PageCache(client, render)
    pages.page("/")
    pages.invalidate("/")
    pages.page("/")
    assert pages.renders == 2


def test_visibleInTheServer(client, myproto_server):
    """The test can look inside the server's cache directly."""
    PageCache(client, render).page("/news")
    assert myproto_server.client.get("page:/news") == b"<h1>/news</h1>"


@pytest.mark.myproto(max_item_size="1k")
def test_pageTooLargeToCache(myproto_server):
    """With a 1k item limit, a large page is refused by the server."""
    client = Client(myproto_server.address, default_noreply=False)
    pages = PageCache(client, lambda path: "x" * 4096)
    with pytest.raises(Exception, match="too large"):
        pages.page("/big")
    client.close()


def test_overTLS(myproto_tls_server):
    """The same code works over TLS, checking the server's certificate."""
    client = Client(
        myproto_tls_server.address, tls_context=myproto_tls_server.sslContext()
    )
    pages = PageCache(client, render)
    pages.page("/secure")
    pages.page("/secure")
    assert pages.renders == 1
    client.close()


def test_sharedServer(myproto_session_server):
    """One server for the whole session is cheaper; keys must not collide."""
    # pymemcache sends sets with noreply unless told otherwise; waiting for
    # the reply makes sure the item is there before the server is asked.
    client = Client(myproto_session_server.address, default_noreply=False)
    pages = PageCache(client, render)
    pages.page("/shared")
    assert myproto_session_server.client.get("page:/shared") is not None
    client.close()
