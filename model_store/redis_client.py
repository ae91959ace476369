"""The Redis client both sides use: one URL, or the primary found through Redis Sentinel.

With ``STREAMLEARN_REDIS_SENTINELS`` set, the client asks the Sentinels where the
primary of ``STREAMLEARN_REDIS_SENTINEL_MASTER`` is, and asks again after a
failover (redis-py's SentinelConnectionPool); ``STREAMLEARN_REDIS_URL`` then only
gives the database, username, password and TLS of the data connections.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import SSLConnection, parse_url
from redis.sentinel import Sentinel

from model_store.settings import Settings

TIMEOUTS = {"socket_timeout": 10, "socket_connect_timeout": 5}


def redis_client(settings: Settings) -> redis.Redis:
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **TIMEOUTS)
    options: dict[str, Any] = parse_url(settings.redis_url)
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True  # SentinelConnectionPool then uses its TLS connection class
    sentinel_options: dict[str, Any] = dict(TIMEOUTS)
    if settings.redis_sentinel_password is not None:
        sentinel_options["password"] = settings.redis_sentinel_password.get_secret_value()
    sentinel = Sentinel(sentinel_addresses(settings.redis_sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(settings.redis_sentinel_master, **options, **TIMEOUTS)


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (port 26379 when omitted; [v6]:port for IPv6)."""
    addresses = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        if item.startswith("["):  # [v6] or [v6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":") or "26379"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, "26379"
        addresses.append((host, int(port)))
    if not addresses:
        raise ValueError(f"STREAMLEARN_REDIS_SENTINELS names no sentinel: {value!r}")
    return addresses
