# -*- mode: python -*-
"""
A pool of myproto workers, one per core, with twemproxy in front: the same
as C{twistd myproto-pool}, set from the environment. Run it with

    twistd -ny tac/pool.tac

Each setting below can be overridden by the environment variable named next
to it.
"""

import os

from twisted.application.service import Application

from myproto.pool import DEFAULT_PROXY_LISTEN, DEFAULT_WORKER_PORT, makeService

WORKERS = int(os.environ.get("MYPROTO_POOL_WORKERS", "0")) or os.cpu_count() or 1
LISTEN = os.environ.get("MYPROTO_POOL_LISTEN", DEFAULT_PROXY_LISTEN)  # the proxy's address
WORKER_PORTS = int(os.environ.get("MYPROTO_POOL_WORKER_PORTS", str(DEFAULT_WORKER_PORT)))
MEMORY_LIMIT = int(os.environ.get("MYPROTO_MEMORY_LIMIT", "64"))  # megabytes, split evenly
NO_PROXY = os.environ.get("MYPROTO_POOL_NO_PROXY", "") == "1"
STATS_PORT = int(os.environ.get("MYPROTO_POOL_STATS_PORT", "22222"))

application = Application("myproto-pool")
makeService(
    {
        "workers": WORKERS,
        "listen": LISTEN,
        "worker-ports": WORKER_PORTS,
        "memory-limit": MEMORY_LIMIT,
        "no-proxy": NO_PROXY,
        "stats-port": STATS_PORT,
    }
).setServiceParent(application)
