"""Changes told to every process at once, through Redis pub/sub.

Each process caches a token's user, a user's profile (their keys) and their policies for
``CHATWIRE_CACHE_TTL``; whatever changes one of them (a revoked token, a changed policy or
key, in a process or from the CLI) publishes ``{"kind", "subject"}`` on the channel
``<CHATWIRE_REDIS_PREFIX>changed``, and every process's listener hands it to
``Services.changed``, which forgets what it cached: the change takes effect everywhere
within a few milliseconds instead of the TTL.

A message published while a process's subscription was broken is lost to it, so after a
reconnection the listener clears every cache (``changed("all", None)``) before going on.
A connection that stops answering without closing (half open) is noticed too: after every
``PING_EVERY`` seconds without a message the listener sends a PING, and a PONG that does
not come within as long again counts as a lost connection.
Without Redis, the caches expire by their TTL, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis
import redis.asyncio

from chatwire.team.redis_counters import REDIS_ERRORS

log = logging.getLogger("chatwire.bus")

# Seconds between two tries to subscribe again after the connection broke.
RECONNECT_EVERY = 0.5
# Seconds the listener waits for a message before checking its connection: a subscription
# broken without a word is noticed within twice this, after which the caches expire by
# CHATWIRE_CACHE_TTL (with the channel heard, they are kept for CHATWIRE_REDIS_CACHE_TTL).
PING_EVERY = 1.0

Changed = Callable[[str, Any], None]


def _ignored(kind: str, subject: Any) -> None:
    pass


def channel(prefix: str) -> str:
    return f"{prefix}changed"


def message(kind: str, subject: Any) -> bytes:
    return msgspec.json.encode({"kind": kind, "subject": subject})


class Bus:
    """Publishes this process's changes and listens for everyone's (``start``)."""

    def __init__(
        self, client: redis.asyncio.Redis, listener: redis.asyncio.Redis, prefix: str
    ) -> None:
        # ``client`` publishes (every call bounded by its timeout); ``listener`` holds the
        # subscription, which waits for messages as long as there are none.
        self._client = client
        self._listener = listener
        self._channel = channel(prefix)
        self._changed: Changed = _ignored
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.received = 0

    def bind(self, changed: Changed) -> None:
        """Hand every change heard to ``changed`` (``Services.changed``)."""
        self._changed = changed

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="chatwire change listener")

    async def publish(self, kind: str, subject: Any) -> None:
        """Tell every process (this one too) that ``kind``/``subject`` changed; a Redis that
        does not answer loses the message (logged): the caches still expire by their TTL."""
        try:
            await self._client.publish(self._channel, message(kind, subject))
        except REDIS_ERRORS as exc:
            log.warning(
                "could not announce a change of %s %r through Redis: %r", kind, subject, exc
            )

    async def _listen(self) -> None:
        broken = False
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Live once something comes back: a connection can take what is written to
                # it and never answer (half open), so every quiet spell ends with a PING
                # whose PONG must arrive within PING_EVERY.
                await pubsub.ping()
                pinged: float | None = loop.time()
                live = False
                while True:
                    got = await pubsub.get_message(timeout=PING_EVERY)
                    if got is None:
                        if pinged is None:
                            await pubsub.ping()
                            pinged = loop.time()
                        elif loop.time() - pinged >= PING_EVERY:
                            raise redis.ConnectionError(
                                f"Redis did not answer a PING within {PING_EVERY:g} s"
                            )
                        continue
                    pinged = None
                    if not live:
                        live = True
                        if broken:
                            # What was published meanwhile never came: forget everything
                            # cached.
                            log.warning("listening for changes through Redis again")
                            self._changed("all", None)
                            broken = False
                        self.subscribed.set()
                    if got.get("type") == "message":
                        self._deliver(got.get("data"))
            except REDIS_ERRORS as exc:
                if not broken:
                    log.warning(
                        "lost the Redis subscription for changes (%r): caches expire by "
                        "CHATWIRE_CACHE_TTL until it is back",
                        exc,
                    )
                broken = True
                self.subscribed.clear()
            finally:
                # Typed from redis-py 8 on, untyped before: through a typed name, both check.
                close: Callable[[], Awaitable[None]] = pubsub.aclose
                with contextlib.suppress(*REDIS_ERRORS):
                    await close()
            await asyncio.sleep(RECONNECT_EVERY)

    def _deliver(self, data: Any) -> None:
        if not isinstance(data, bytes | str):
            return
        try:
            body = msgspec.json.decode(data)
            kind, subject = body["kind"], body.get("subject")
        except (msgspec.DecodeError, KeyError, TypeError):
            log.warning("ignored a change message that is not chatwire's: %r", data[:200])
            return
        self.received += 1
        self._changed(str(kind), subject)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._listener.aclose()


def listener(url: str, timeout: float) -> redis.asyncio.Redis:
    """The subscription's client: ``timeout`` to connect, none to wait for a message."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def publish_now(url: str, prefix: str, kind: str, subject: Any, timeout: float = 1.0) -> bool:
    """Publish a change from outside a server (the CLI): False, quietly, when Redis does not
    answer (the servers' caches expire by their TTL anyway)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.publish(channel(prefix), message(kind, subject))
    except REDIS_ERRORS:
        return False
    finally:
        client.close()
    return True
