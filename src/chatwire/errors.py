"""The errors chatwire answers with, drawn once.

Every failure a person can see is a ``ChatwireError`` carrying the HTTP status and a
message that makes sense on its own (the chatbot-ui client shows only the message)::

    ChatwireError
    ├── RequestInvalid          400  body not JSON, a field missing or of the wrong type
    ├── KeyMissing              400  no key for the provider, stored or from the environment
    ├── NotFound                404  a record of the caller's that does not exist
    │   └── ProviderNotFound    404  /api/chat/<name> for a provider chatwire does not know
    ├── UnknownURL              404  a path no route serves
    ├── MethodNotAllowed        405  anything but POST on a chat route
    ├── BodyTooLarge            413  body over CHATWIRE_MAX_BODY_BYTES
    ├── AuthenticationRequired  401  no bearer token, or one that is unknown or revoked
    ├── TooManyStreams          429  the caller has CHATWIRE_MAX_STREAMS_PER_USER open already
    ├── Overloaded              503  this process holds CHATWIRE_MAX_STREAMS streams already
    ├── InternalError           500  a fault in chatwire itself, logged with the request id
    └── UpstreamError           the provider's own answer, status passed through
        ├── UpstreamKeyInvalid  401  the provider refused the key
        ├── UpstreamUnreachable 502  connection refused, reset, DNS, TLS, broken reply
        └── UpstreamTimeout     504  no answer within the connect or first-byte timeout

Lower-level errors are mapped to these in one place per boundary: for the upstream,
``Provider.error_for_status`` (by status) and ``Provider.transport_error`` (aiohttp and
stream failures); for request bodies, ``api.schemas.decode_chat_request`` (msgspec).
A failure after the reply has started streaming cannot change the status any more; it
becomes ``StreamAborted`` and the response is cut without a clean end.
"""

from __future__ import annotations


class ChatwireError(Exception):
    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []


class RequestInvalid(ChatwireError):
    status = 400


class KeyMissing(ChatwireError):
    status = 400


class NotFound(ChatwireError):
    status = 404


class ProviderNotFound(NotFound):
    pass


class UnknownURL(ChatwireError):
    status = 404


class InternalError(ChatwireError):
    status = 500


class MethodNotAllowed(ChatwireError):
    status = 405

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", b"POST")]


class BodyTooLarge(ChatwireError):
    status = 413


class AuthenticationRequired(ChatwireError):
    status = 401

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="chatwire"')]


class _RetryLater(ChatwireError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after).encode())]


class TooManyStreams(_RetryLater):
    status = 429


class Overloaded(_RetryLater):
    status = 503


class UpstreamError(ChatwireError):
    """The provider answered with an error; ``status`` is the provider's own."""

    status = 502

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", self.retry_after.encode("ascii", "ignore"))]


class UpstreamKeyInvalid(UpstreamError):
    status = 401


class UpstreamUnreachable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class StreamAborted(Exception):
    """The upstream failed after the reply started: the response must end uncleanly."""
