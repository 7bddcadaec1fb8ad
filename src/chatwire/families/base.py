"""What a wire family is, and what every family's translation shares.

A ``Family`` knows one provider API: it builds the upstream request from the canonical
``ChatCall`` (``build``), reads the upstream's stream back as reply text (``text_reader``,
the chatbot-ui route's fast path) or as canonical deltas (``reader``), and tells which
error answers mean the key was refused. A family serves every dialect; adding a dialect
touches none of them. Where its providers embed text, the family's module also has the
embeddings half of its wire format (an ``Embeddings``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from chatwire.api.schemas import ImagePart, ImageURL, Part, TextPart
from chatwire.errors import RequestInvalid
from chatwire.gateway.call import OWN_FIELDS

if TYPE_CHECKING:
    import aiohttp

    from chatwire.catalogue import ModelEntry
    from chatwire.dialects.base import Native
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.embedding_call import EmbeddingCall
    from chatwire.gateway.lines import DeltaReader, Relay, TextReader
    from chatwire.gateway.upstream import Target, UpstreamCall
    from chatwire.providers.declaration import Provider, Rules


class Family(Protocol):
    name: str

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        """The provider's request for the call; a 400 naming what the provider cannot take
        (unless the operator drops such parameters: ``drop``)."""
        ...

    def text_reader(self, provider: Provider) -> TextReader:
        """A fresh reader of one streamed reply's text."""
        ...

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        """A fresh reader of one reply as canonical deltas."""
        ...

    def key_rejected(self, status: int, body: bytes) -> bool:
        """Whether an error answer means the provider refused the key."""
        ...

    def response_headers(self, provider: Provider, call: ChatCall) -> list[tuple[bytes, bytes]]:
        """Headers the reply carries for what the family did with the call (usually none)."""
        ...

    async def discover(
        self, http: aiohttp.ClientSession, provider: Provider
    ) -> list[tuple[str, ModelEntry]] | None:
        """The models the provider's server has, for one whose models are its own (a local
        Ollama); None for a provider whose models the catalogue lists."""
        ...


class Embeddings(Protocol):
    """The embeddings half of a family's wire format, for the providers that have it
    (``Provider.embeddings``): the upstream request for an ``EmbeddingCall``, and the vectors
    and usage in the provider's answer."""

    def build(
        self, provider: Provider, target: Target, call: EmbeddingCall, drop: bool
    ) -> UpstreamCall:
        """The provider's request; a 400 naming what the provider cannot take (unless the
        operator drops such parameters: ``drop``)."""
        ...

    def parse(self, answer: Any) -> tuple[list[Any], dict[str, int] | None]:
        """The vectors of a decoded answer, in input order, and the usage it reported
        (None: none); a shape error (KeyError, TypeError...) when it is not an answer."""


@runtime_checkable
class Forwarding(Protocol):
    """A family that takes a body already in its own wire format (a ``Native`` request) and
    relays its reply's bytes as they came."""

    name: str

    def forward(self, provider: Provider, target: Target, native: Native) -> UpstreamCall:
        """The upstream request for the body as sent: only its model the target's."""
        ...

    def relay_reader(self, provider: Provider, native: Native) -> Relay:
        """A fresh reader passing the reply on unchanged, reading its usage."""
        ...


class CatalogueModels:
    """The defaults of a family whose calls need no reply headers and whose providers' models
    the catalogue lists (every family but Ollama's)."""

    def response_headers(self, provider: Provider, call: ChatCall) -> list[tuple[bytes, bytes]]:
        return []

    async def discover(
        self, http: aiohttp.ClientSession, provider: Provider
    ) -> list[tuple[str, ModelEntry]] | None:
        return None


# What every translated family takes; a family adds what it translates besides.
BASE_FIELDS = OWN_FIELDS | {"temperature", "max_tokens", "max_completion_tokens", "n"}
DROP_HINT = "(or have the operator set CHATWIRE_DROP_PARAMS=true)"


def check_fields(
    label: str, params: Mapping[str, Any], accepted: Collection[str], drop: bool
) -> None:
    """A 400 naming every given parameter the family cannot take, unless they are dropped."""
    given = {name for name, value in params.items() if value is not None}
    unsupported = sorted(given - set(accepted))
    if params.get("n") not in (None, 1):
        unsupported.append("n > 1")
    if unsupported and not drop:
        raise RequestInvalid(
            f"{label} does not take {', '.join(repr(n) for n in unsupported)} through "
            f"chatwire; leave them out {DROP_HINT}."
        )


def number(params: Mapping[str, Any], name: str) -> float | None:
    """A numeric parameter as sent, or None; a 400 when it is not a number."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestInvalid(f"'{name}' must be a number, not {value!r:.50}.")
    return value


def stop_sequences(params: Mapping[str, Any]) -> list[str] | None:
    """``stop`` as a list of strings, or None when there is none."""
    stop = params.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop or None
    if stop is not None:
        raise RequestInvalid("'stop' must be a string or a list of strings.")
    return None


def call_arguments(where: str, function: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments, JSON text as OpenAI's clients send them back, as the object
    the translated families want; none (or an empty string) is no arguments."""
    arguments = function.get("arguments")
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        try:
            arguments = msgspec.json.decode(arguments)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise RequestInvalid(
                f"{where}.function.arguments is not valid JSON ({exc}); send the arguments back "
                "as the model gave them, a JSON object as text."
            ) from exc
    if not isinstance(arguments, dict):
        raise RequestInvalid(
            f"{where}.function.arguments must be a JSON object (as text), as the model gave it."
        )
    return arguments


def clamp_temperature(rules: Rules, value: float | None, entry: ModelEntry | None) -> float | None:
    """A temperature as the provider gets it: clamped to the model's range, or none at all
    for a provider or model that takes none."""
    if value is None or not rules.send_temperature:
        return None
    if entry is not None:
        if not entry.accepts_temperature:
            return None
        return min(max(value, entry.min_temperature), entry.max_temperature)
    return value


def reply_budget(rules: Rules, params: Mapping[str, Any], entry: ModelEntry | None) -> int | None:
    """The reply's token budget: the client's (max_completion_tokens, else max_tokens), else
    the catalogue's max output where the provider's rules send one."""
    budget = params.get("max_completion_tokens") or params.get("max_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return budget
    if rules.send_max_tokens and entry is not None:
        return entry.max_output
    return None


# Message content: a string, or text and image_url parts.
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
Content = str | list[Part] | None


@dataclass(frozen=True, slots=True)
class Image:
    """An image part: inline base64 data with its media type, or a URL to fetch."""

    media_type: str | None
    data: str | None
    url: str | None


def content_parts(label: str, index: int, message: Mapping[str, Any]) -> list[str | Image]:
    """A message's content as text pieces and images, in order; a 400 for anything else."""
    content = message.get("content")
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    try:
        parts = msgspec.convert(content, list[Part])
    except msgspec.ValidationError as exc:
        raise RequestInvalid(
            f"messages[{index}].content is not something {label} takes (text, or text and "
            f"image_url parts): {exc}"
        ) from exc
    found: list[str | Image] = []
    for part in parts:
        if isinstance(part, TextPart):
            found.append(part.text)
        elif isinstance(part, ImagePart):
            found.append(image(part))
    return found


def image(part: ImagePart) -> Image:
    url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return Image(media_type=None, data=None, url=url)
    return Image(media_type=match["type"], data=match["data"], url=None)


def text_of(parts: list[str | Image]) -> str:
    """Only the text of a message's parts, joined by blank lines."""
    return "\n\n".join(p for p in parts if isinstance(p, str))
