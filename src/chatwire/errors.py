"""The errors chatwire answers with, drawn once.

Every failure a person can see is a ``ChatwireError`` carrying the HTTP status and a
message that makes sense on its own (the chatbot-ui client shows only the message)::

    ChatwireError
    ├── RequestInvalid          400  body not JSON, a field missing or of the wrong type
    ├── KeyMissing              400  no key for the provider, stored or from the environment
    ├── NotFound                404  a record of the caller's that does not exist
    │   ├── ProviderNotFound    404  /api/chat/<name> for a provider chatwire does not know
    │   └── ResponseNotFound    404  a stored response that is not the caller's, or expired
    ├── UnknownURL              404  a path no route serves
    ├── MethodNotAllowed        405  anything but POST on a chat route
    ├── BodyTimeout             408  body not whole within CHATWIRE_BODY_TIMEOUT
    ├── LimitReached            409  the caller has CHATWIRE_MAX_CUSTOM_MODELS custom models
    ├── AlreadyExists           409  a user or token name that is taken; the last admin demoted
    ├── BodyTooLarge            413  body over CHATWIRE_MAX_BODY_BYTES, or its route's own limit
    ├── AuthenticationRequired  401  no bearer token, or one that is unknown or revoked
    ├── CSRFRefused             403  a change signed in by cookie without its session's CSRF token
    ├── AdminOnly               403  /api/admin/... for a caller whose role is not admin
    ├── ModelNotAllowed         403  a model the token's or the user's policy does not allow
    ├── TooManyStreams          429  the caller has CHATWIRE_MAX_STREAMS_PER_USER open already
    ├── TooManyFailures         429  too many failed bearer tokens from the client's address
    ├── LimitExceeded           429  a token's or user's rpm, tpm or chats at once (team.limits)
    ├── QuotaExceeded           429  a token's or user's budget for the period is spent
    ├── ModelUnpriced           403  a caller with a budget asks for a model without a price
    ├── LimitsUnavailable       503  Redis does not answer, CHATWIRE_REDIS_FAILURE=closed
    ├── Overloaded              503  this process holds CHATWIRE_MAX_STREAMS streams already
    ├── ShuttingDown            503  the server stopped a chat before its reply started
    ├── StoreUnavailable        503  the database refused, timed out, is locked or is busy
    ├── InternalError           500  a fault in chatwire itself, logged with the request id
    ├── LoopDetected            508  the request already passed through chatwire MAX_HOPS times
    └── UpstreamError           the provider's own answer, status passed through
        ├── UpstreamKeyInvalid  401  the provider refused the key
        ├── UpstreamNotAllowed  403  a user-set URL reaches an address the operator does not allow
        ├── UpstreamUnreachable 502  connection refused, reset, DNS, TLS, broken reply
        ├── UpstreamTimeout     504  no answer within the connect or first-byte timeout
        ├── ReplyTooLarge       502  a reply past CHATWIRE_MAX_REPLY_BYTES
        └── ReplyTooLong        504  a reply still going after CHATWIRE_MAX_CHAT_SECONDS

Lower-level errors are mapped to these in one place per boundary: for the upstream,
``gateway.failures`` (``error_for_status`` by status, ``transport_error`` for aiohttp and
stream failures); for request bodies, ``api.schemas.decode_chat_request`` (msgspec); for
the database, ``store.health.unavailable`` (SQLAlchemy, asyncpg and SQLite failures).
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


class ResponseNotFound(NotFound):
    """``param``: the request field that named it (``previous_response_id``), if any."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownURL(ChatwireError):
    status = 404


class InternalError(ChatwireError):
    status = 500


class LoopDetected(ChatwireError):
    status = 508


class MethodNotAllowed(ChatwireError):
    status = 405

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", b"POST")]


class BodyTimeout(ChatwireError):
    status = 408


class LimitReached(ChatwireError):
    status = 409


class AlreadyExists(ChatwireError):
    status = 409


class BodyTooLarge(ChatwireError):
    status = 413


class AuthenticationRequired(ChatwireError):
    status = 401

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="chatwire"')]


class CSRFRefused(ChatwireError):
    status = 403


class AdminOnly(ChatwireError):
    status = 403


class ModelNotAllowed(ChatwireError):
    """``allowed``: the patterns of the policy that refused (the message names them)."""

    status = 403

    def __init__(self, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed


class _RetryLater(ChatwireError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after).encode())]


class TooManyStreams(_RetryLater):
    status = 429


class TooManyFailures(_RetryLater):
    status = 429


class LimitExceeded(_RetryLater):
    status = 429


class QuotaExceeded(ChatwireError):
    """A budget spent: ``retry_after`` is when its period starts again (None: a total
    budget, which never does)."""

    status = 429

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(self.retry_after).encode())]


class ModelUnpriced(ChatwireError):
    status = 403


class LimitsUnavailable(_RetryLater):
    status = 503


class Overloaded(_RetryLater):
    status = 503


class ShuttingDown(_RetryLater):
    status = 503


class StoreUnavailable(_RetryLater):
    """The database did not answer in time, refused the connection or is locked: the
    request may pass in a moment, on this process or another."""

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


class UpstreamNotAllowed(UpstreamError):
    status = 403


class UpstreamUnreachable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class ReplyTooLarge(UpstreamError):
    status = 502


class ReplyTooLong(UpstreamError):
    status = 504


class StreamAborted(Exception):
    """The upstream failed after the reply started: the response must end uncleanly."""
