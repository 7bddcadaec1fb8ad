"""What a dialect is: how one front door's requests, replies and errors look on the wire.

A dialect decodes its request body into the canonical ``ChatCall`` (``decode``), encodes the
reply as it arrives (an ``Output``: text pieces, or canonical deltas, as ``reads_text`` says),
renders every error in its own shape (``send_error``), and says what a failure after the
reply started does (``Output.fail``). It knows no provider and no family: the pipeline
(``gateway.pipeline``) resolves, builds and relays for every dialect alike.

A ``NativeDialect``'s bodies are one family's own wire format (Anthropic's Messages API): its
request carries a ``Native`` body, which the pipeline relays as sent when the chat goes to a
provider of that family (``family.forward``; the reply's bytes relayed unchanged too), and
has the dialect translate into the canonical call (``translate``) for any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chatwire.api.asgi import Heads, Scope, Send
    from chatwire.errors import ChatwireError
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.lines import DeltaReader
    from chatwire.services import Services
    from chatwire.timing import Timing


class Stateful(Protocol):
    """A dialect's own state of one request, with a step that needs the caller (stored
    replies to continue from), run once the caller is known and before anything is built."""

    async def prepare(self, services: Services, user_id: int) -> None: ...


@dataclass(slots=True)
class Request:
    """A decoded request: the canonical call and what names its upstream."""

    call: ChatCall
    # The provider the route names (``/api/chat/<provider>``); None: the model's name says.
    provider: str | None
    # The model as the client named it, echoed in its answers.
    name: str
    # chatbot-ui's customModelId (the record's id); on other doors the model's name is used.
    custom_id: str | None = None
    # A body in a family's own wire format (a ``NativeDialect``'s), else None.
    native: Native | None = None
    # The dialect's own state, for a dialect that needs one (``Stateful.prepare``).
    state: Stateful | None = None


@dataclass(slots=True)
class Native:
    """A request body in one family's own wire format, as the client sent it."""

    # The family that speaks the format (``Family.name``).
    family: str
    # The family's endpoint the body is for, below the provider's base URL ("/messages").
    endpoint: str
    body: dict[str, Any]
    # The body's bytes as they came (sent as they are when the model's name needs no change).
    raw: bytes
    # The client's headers that the family's API reads, passed on unchanged.
    headers: dict[str, str]
    # The client's query string, passed on unchanged.
    query: str = ""
    stream: bool = False


class Output(Protocol):
    """One reply on its way to the client."""

    @property
    def started(self) -> bool:
        """Whether the response has begun (its status can no longer change)."""
        ...

    async def write(self, items: Any) -> None:
        """What one upstream read gave: text (``reads_text``), else a list of deltas."""
        ...

    async def end(self) -> None:
        """The reply is complete (its reader has the usage, or a whole answer)."""
        ...

    async def fail(self, error: ChatwireError) -> None:
        """The upstream failed after the response began."""
        ...


class Dialect(Protocol):
    # The path the dialect serves, for messages ("Use POST for ...").
    route: str
    # Reads the reply as text only (the families' fast text readers), else as deltas.
    reads_text: bool

    def decode(self, path: str, body: bytes) -> Request: ...

    def output(
        self,
        send: Send,
        rid: bytes,
        timing: Timing,
        request: Request,
        reader: Any,
        headers: list[tuple[bytes, bytes]],
    ) -> Output:
        """The reply's encoder; ``reader`` is the family's (text or deltas, by
        ``reads_text``), which holds the usage once the reply ended."""
        ...

    async def send_error(
        self, send: Send, error: ChatwireError, rid: bytes, timing: Timing
    ) -> None: ...


@runtime_checkable
class NativeDialect(Dialect, Protocol):
    """A dialect whose requests are a family's own format (see the module docstring)."""

    def authorization(self, scope: Scope, heads: Heads) -> bytes | None:
        """The credentials the request carries, as an ``Authorization`` value (``Bearer
        <token>``), however the front door's clients send them."""
        ...

    def decode_native(self, scope: Scope, body: bytes) -> Request:
        """``decode``, with the request's headers at hand; the request carries ``native``."""
        ...

    def translate(self, request: Request, drop: bool) -> bool:
        """The native body as the canonical call (into ``request.call``), for a provider of
        another family; True when the dialect answers it itself, with no upstream (its
        output's ``end`` gives the answer)."""
        ...


def completion_of(reader: DeltaReader) -> Any:
    """A whole answer a reader holds (a non-streamed upstream's), else None."""
    return getattr(reader, "answer", None)
