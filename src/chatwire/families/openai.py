"""The OpenAI-compatible family: ``POST {base}/chat/completions``, data-only server-sent events.

Mistral speaks it, and so do most providers. The call is the client's own request, by the
provider's ``Rules``: parameters renamed where the provider calls them otherwise, refused with
a 400 naming them where it cannot take them (or dropped, when the operator sets
``CHATWIRE_DROP_PARAMS``), passed on as given otherwise; messages changed only where the rules
say (roles, fields, tool call ids). chatbot-ui's typed messages go as they are. Signed
reasoning on an assistant message (``reasoning_signature``, with its ``reasoning_content``,
and ``reasoning_redacted``) is Anthropic's, given back for Anthropic's models: it is left
out, as these providers have no use for it and some refuse fields they do not know.

The reply: the text reader decodes just each chunk's delta text, finish reason and error,
skipping the rest (the chatbot-ui route's fast path); the delta reader passes the chunks on,
numbering Mistral's whole tool calls as OpenAI's clients gather them, and gives /v1's
streamed output each plain text delta as the provider's own bytes (``Chunks._steady``: no
decode and encode of the chunk for its new id and model). A non-streamed call is answered
with one ``chat.completion``, read whole. Embeddings (``OpenAIEmbeddings``):
``POST {base}/embeddings``, OpenAI's own shape both ways.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import CatalogueModels
from chatwire.gateway.call import OWN_FIELDS
from chatwire.gateway.embedding_call import token_usage
from chatwire.gateway.lines import (
    ANY_JSON,
    DECODE_ERRORS,
    DeltaReader,
    StreamFailed,
    TextReader,
    text_size,
)
from chatwire.gateway.upstream import UpstreamCall
from chatwire.providers.error_text import readable_message

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.embedding_call import EmbeddingCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider, Rules

_encode = msgspec.json.Encoder().encode


class OpenAIFamily(CatalogueModels):
    name = "openai"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        rules, label = provider.rules, provider.label
        messages = call.messages
        if not call.typed:
            messages = _unsigned(messages)
            if rules.changes_messages:
                messages = [_message(rules, label, i, m, drop) for i, m in enumerate(messages)]
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "stream": call.stream,
        }
        translate(rules, label, call.params, drop, payload)
        if call.stream and rules.ask_for_usage:
            payload["stream_options"] = {"include_usage": True}
        headers = {
            **provider.auth_headers(target.key),
            **target.headers,
            "Content-Type": "application/json",
        }
        if call.stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamCall(
            url=f"{target.base_url}/chat/completions{target.query}",
            headers=headers,
            body=_encode(payload),
        )

    def text_reader(self, provider: Provider) -> TextReader:
        return _TextEvents(provider.rules.ask_for_usage)

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        if not call.stream:
            return Answer()
        return Chunks(keep_usage=not call.include_usage, usage_follows=provider.rules.ask_for_usage)

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # 401 says it, for every OpenAI-compatible provider


def translate(
    rules: Rules,
    label: str,
    params: Mapping[str, Any],
    drop: bool,
    out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters to send, from the client's, by the provider's rules (into ``out``)."""
    out = {} if out is None else out
    for name, value in params.items():
        if name in OWN_FIELDS or value is None:
            continue
        if name in rules.refuse or (name == "n" and rules.one_choice and value != 1):
            if drop:
                continue
            raise _refused(label, name if name != "n" else "n > 1")
        out[rules.rename.get(name, name)] = value
    return out


_SIGNED = ("reasoning_content", "reasoning_signature", "reasoning_redacted")


def _signs(message: Any) -> bool:
    return isinstance(message, dict) and (
        "reasoning_signature" in message or "reasoning_redacted" in message
    )


def _unsigned(messages: list[Any]) -> list[Any]:
    """The messages without signed (or redacted) reasoning (the list as it is when none has
    any)."""
    if not any(_signs(m) for m in messages):
        return messages
    return [{k: v for k, v in m.items() if k not in _SIGNED} if _signs(m) else m for m in messages]


def _message(rules: Rules, label: str, index: int, message: Any, drop: bool) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise RequestInvalid(f"messages[{index}] is not an object.")
    role = message.get("role")
    allowed = None
    if isinstance(role, str):
        role = rules.roles.get(role, role)
        if rules.message_fields is not None:
            allowed = rules.message_fields.get(role)
    out: dict[str, Any] = {}
    for name, value in message.items():
        if name == "role":
            value = role
        elif value is None and allowed is not None and name not in allowed:
            continue
        elif name in rules.refuse_in_messages or (allowed is not None and name not in allowed):
            if drop:
                continue
            raise _refused(label, f"messages[{index}].{name}")
        out[name] = value
    if rules.call_id is not None:
        _map_call_ids(rules.call_id, out)
    return out


def _map_call_ids(pattern: re.Pattern[str], message: dict[str, Any]) -> None:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message["tool_calls"] = [
            {**call, "id": _call_id(pattern, call["id"])}
            if isinstance(call, dict) and isinstance(call.get("id"), str)
            else call
            for call in calls
        ]
    if isinstance(message.get("tool_call_id"), str):
        message["tool_call_id"] = _call_id(pattern, message["tool_call_id"])


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _call_id(pattern: re.Pattern[str], call_id: str) -> str:
    """The id itself when the provider takes it; else nine letters and digits drawn from
    its hash, so a call and the tool result answering it map to the same id."""
    if pattern.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    letters = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


def _refused(label: str, name: str) -> RequestInvalid:
    return RequestInvalid(
        f"{label} does not accept the parameter '{name}'; leave it out (or have the operator "
        "set CHATWIRE_DROP_PARAMS=true to drop such parameters)."
    )


# The text reader: typed, reading only what the text needs.
class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct, omit_defaults=True):
    cached_tokens: Any = None
    cache_write_tokens: Any = None


class _CompletionDetails(msgspec.Struct, omit_defaults=True):
    reasoning_tokens: Any = None


class _Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: Any = None
    completion_tokens: Any = None
    total_tokens: Any = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    error: Any = None
    # On the last chunk only (decoded only where present).
    usage: _Usage | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)


class _TextEvents(TextReader):
    """Data-only server-sent events; each ``data:`` line is one JSON chunk, then [DONE]. A
    provider asked for its usage (``stream_options``) sends it in a chunk of its own after
    the finish reason: its reply ends at [DONE] (or with the body), else at the finish
    reason."""

    __slots__ = ("_finish_seen", "_usage_follows")
    prefix = b"data:"

    def __init__(self, usage_follows: bool = False) -> None:
        super().__init__(_CHUNK)
        self._usage_follows = usage_follows
        self._finish_seen = False

    def item(self, chunk: _Chunk) -> str | None:
        if chunk.error is not None:
            raise mid_stream(chunk.error)
        if chunk.usage is not None:
            self.usage = msgspec.to_builtins(chunk.usage)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            if choice.finish_reason == "error":
                raise StreamFailed("the reply ended with finish_reason 'error'")
            if self._usage_follows:
                self._finish_seen = True
            else:
                self.finished = True
        return choice.delta.content if choice.delta is not None else None

    def close(self) -> str:
        self.finished = self.finished or self._finish_seen
        return super().close()


# The delta reader's fast path (``Chunks._steady``): a chunk of nothing but text deltas,
# checked by typed decodes that refuse anything else (an unknown field is a ValidationError),
# whose ``choices`` go on as the provider's own bytes. Every field is decoded, none skipped:
# msgspec skips a field without checking its strings are UTF-8, which the whole decode of
# the other path refuses. The fields besides ``content`` and ``reasoning_content`` are the
# ones the other path passes on unread.
class _TextDelta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    role: Any = None
    refusal: Any = None
    reasoning: Any = None


class _TextChoice(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    index: Any = None
    delta: _TextDelta | None = None
    finish_reason: None = None
    logprobs: Any = None


class _Steady(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    choices: msgspec.Raw
    usage: None = None
    error: None = None
    # Dropped on either path: the output has the client's own.
    id: Any = None
    object: Any = None
    created: Any = None
    model: Any = None
    system_fingerprint: Any = None
    service_tier: Any = None
    obfuscation: Any = None


_STEADY = msgspec.json.Decoder(_Steady).decode
_TEXT_CHOICES = msgspec.json.Decoder(list[_TextChoice]).decode


def mid_stream(error: Any) -> StreamFailed:
    """The failure for an error the provider reported inside its stream."""
    text = readable_message(msgspec.json.encode(error)) or "no details"
    return StreamFailed(f"an error in the middle of the reply: {text}")


class Chunks(DeltaReader):
    """Already chunks. The reply ends at [DONE]: OpenAI sends its usage chunk after the
    finish reason; a stream that ends after a finish reason without [DONE] is complete too.

    A tool call goes to the client whole, in one delta, once it is complete (the next call
    begins, or the choice finishes), as Mistral sends calls: OpenAI streams a call's
    arguments in pieces whose later deltas carry no name, which the Mistral SDKs refuse.

    ``allow_raw``: the fast path of /v1's streamed output (see ``_steady``).
    """

    __slots__ = (
        "_call_ids",
        "_calls",
        "_cr",
        "_finish_seen",
        "_held",
        "_hold_finish",
        "_keep_usage",
        "_raw",
        "_started",
    )
    prefix = b"data:"
    places_usage = True

    def __init__(self, keep_usage: bool = False, usage_follows: bool = False) -> None:
        super().__init__(ANY_JSON)
        self._finish_seen = False
        self._call_ids: dict[str, int] = {}
        # Without include_usage, usage stays where the provider put it (Mistral's own
        # clients read it from the last chunk); with it, it moves to OpenAI's usage chunk.
        self._keep_usage = keep_usage
        # OpenAI sends usage (when asked) in a chunk of its own after the finish reason:
        # without include_usage, the finish chunk waits for it and carries it, as Mistral's.
        self._hold_finish = keep_usage and usage_follows
        # From the first finish chunk on (one per choice when n > 1), in order.
        self._held: list[dict[str, Any]] = []
        self._started = False
        # Choice index -> its tool calls being gathered, by call index.
        self._calls: dict[Any, dict[int, dict[str, Any]]] = {}
        self._raw = False
        self._cr = False

    def allow_raw(self) -> None:
        """Lets ``feed`` give a text delta of the steady state as its ``choices``' own bytes
        (a ``msgspec.Raw``), for an output that writes the chunk's head itself."""
        self._raw = True

    def feed(self, block: bytes) -> list[Any]:
        first = None
        if self._raw:
            first = self._steady
            # Whether a line of this read may hold a CR (``_steady``). ``find``: ``in`` tries
            # its operand as an integer first, raising and clearing a TypeError each time.
            self._cr = block.find(b"\r") >= 0 or self._rest.find(b"\r") >= 0
        chunks = self.items(block, True, first)
        if chunks:
            self.relayed += text_size(chunks)
        return chunks

    def _steady(self, data: bytes) -> msgspec.Raw | None:
        """The chunk's ``choices`` as the provider sent them, when ``item`` would give the
        chunk with nothing changed but its head (the client's id and model): no usage, no
        error, and every choice a text delta (content, reasoning, a role) without a finish
        reason, once the first delta has had its role and while no finish chunk is held and
        no tool call is being gathered. Anything else: None, and the line takes ``item``.

        Why: a text delta is nearly every line of a reply, and decoding each to a dict to
        encode it again under the client's id and model was most of /v1's cost per delta,
        which a relay passing the bytes on does not pay: 32,497 instructions per delta
        before, 18,064 with this path (bench/README.md, "/v1's text deltas as the
        provider's bytes")."""
        if not self._started or self._held or self._calls:
            return None
        if self._cr and data.find(b"\r") >= 0:
            return None  # a bare CR between JSON's tokens would end the client's event line
        try:
            chunk = _STEADY(data)
            choices = _TEXT_CHOICES(chunk.choices)
        except DECODE_ERRORS:
            return None  # not of the fast path's shape; ``item`` says what it is
        if not choices:
            return None
        size = 0
        for choice in choices:
            change = choice.delta
            if change is not None:
                if change.content is not None:
                    size += len(change.content)
                if change.reasoning_content is not None:
                    size += len(change.reasoning_content)
        self.relayed += size
        return chunk.choices

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        usage = item.get("usage") if self._keep_usage else item.pop("usage", None)
        self.usage = usage or self.usage
        choices = item.get("choices") or []
        if choices and not self._started:
            self._started = True
            first = choices[0].get("delta") if isinstance(choices[0], dict) else None
            if isinstance(first, dict):
                # OpenAI's clients (the Node SDK's stream helpers) want it in the first delta.
                first.setdefault("role", "assistant")
        finishing = gathering = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self._finish_seen = finishing = True
            change = choice.get("delta")
            if isinstance(change, dict) and "tool_calls" in change:
                gathering = True
        if gathering or (finishing and self._calls):
            choices = self._whole_calls(choices)
        if not choices:
            if not (self._held and usage):
                return []
            held, self._held = self._held, []
            held[-1] = {**held[-1], "usage": usage}
            return held
        chunk: dict[str, Any] = {"choices": choices}
        if self._keep_usage and usage:
            chunk["usage"] = usage
        elif self._hold_finish and (finishing or self._held):
            self._held.append(chunk)
            return []
        return [chunk]

    def _whole_calls(self, choices: list[Any]) -> list[Any]:
        """The choices with their tool-call pieces gathered: each call goes out whole once
        complete; a delta left with nothing but a piece being gathered is left out."""
        kept = []
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index")
            finish = choice.get("finish_reason")
            change = choice.get("delta")
            pieces = change.pop("tool_calls", None) if isinstance(change, dict) else None
            if pieces:
                self._number(pieces)
            whole = self._gather(index, pieces) if pieces else []
            if finish:
                whole += self._flush(index)
            if whole:
                if not isinstance(change, dict):
                    change = choice["delta"] = {}
                change["tool_calls"] = whole
            elif pieces and not finish and not (change or {}).keys() & {"content", "role"}:
                continue  # nothing left of this delta but a piece of a call being gathered
            kept.append(choice)
        return kept

    def _gather(self, choice: Any, pieces: Any) -> list[dict[str, Any]]:
        """Adds the pieces to the choice's calls; gives the calls now complete, in order."""
        calls = self._calls.setdefault(choice, {})
        complete: list[dict[str, Any]] = []
        for piece in pieces if isinstance(pieces, list) else ():
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", 0)
            if index not in calls:
                # A new call begins: those before it are complete.
                complete += [calls.pop(i) for i in sorted(calls) if i < index]
                calls[index] = {
                    "index": index,
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            call = calls[index]
            if piece.get("id"):
                call["id"] = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["function"]["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["function"]["arguments"] += function["arguments"]
        return complete

    def _flush(self, choice: Any) -> list[dict[str, Any]]:
        calls = self._calls.pop(choice, {})
        return [calls[i] for i in sorted(calls)]

    def done(self) -> list[dict[str, Any]]:
        held, self._held = self._held, []
        # Calls still gathered when the stream ends go out before its end.
        for choice in sorted(self._calls, key=lambda c: c if isinstance(c, int) else 0):
            calls = self._flush(choice)
            held.append(
                {
                    "choices": [
                        {"index": choice, "delta": {"tool_calls": calls}, "finish_reason": None}
                    ]
                }
            )
        return held

    def close(self) -> list[dict[str, Any]]:
        self.finished = self.finished or self._finish_seen
        return super().close() + self.done()

    def _number(self, calls: Any) -> None:
        """OpenAI clients gather a streamed call by ``index`` and want its ``type``; Mistral
        sends each call whole, with neither: number them by id, in order."""
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            call_id = call.get("id")
            if "index" not in call:
                if isinstance(call_id, str):
                    call["index"] = self._call_ids.setdefault(call_id, len(self._call_ids))
                else:
                    call["index"] = max(len(self._call_ids) - 1, 0)
            if call_id is not None and "type" not in call:
                call["type"] = "function"


MAX_ANSWER = 16 * 1024 * 1024


class Answer(DeltaReader):
    """A non-streamed call's one ``chat.completion``, read whole (up to 16 MiB)."""

    __slots__ = ("_parts", "_size", "answer")

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._parts: list[bytes] = []
        self._size = 0
        self.answer: dict[str, Any] | None = None

    def feed(self, block: bytes) -> list[dict[str, Any]]:
        self._size += len(block)
        if self._size > MAX_ANSWER:
            raise StreamFailed(f"an answer larger than {MAX_ANSWER} bytes")
        self._parts.append(block)
        return []

    def close(self) -> list[dict[str, Any]]:
        try:
            answer = ANY_JSON.decode(b"".join(self._parts))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            raise StreamFailed("an answer that is not JSON") from None
        self._parts = []
        for choice in answer.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            for call in (message or {}).get("tool_calls") or ():
                if isinstance(call, dict):
                    call.setdefault("type", "function")
        usage = answer.get("usage")
        self.usage = usage if isinstance(usage, dict) else None
        self.answer = answer
        self.finished = True
        return []


class OpenAIEmbeddings:
    """Embeddings: ``POST {base}/embeddings`` (Azure's under the deployment, with its
    api-version), OpenAI's request as the client sent it, by the provider's rules (what they
    refuse is a 400 naming it); the answer's ``data`` in ``index`` order, and its usage.
    ``tokens``: whether the provider takes token arrays as input; ``rename``: its own names
    for OpenAI's ``encoding_format`` and ``dimensions``."""

    __slots__ = ("rename", "tokens")

    def __init__(self, *, tokens: bool = True, rename: Mapping[str, str] | None = None) -> None:
        self.tokens = tokens
        self.rename = dict(rename or {})

    def build(
        self, provider: Provider, target: Target, call: EmbeddingCall, drop: bool
    ) -> UpstreamCall:
        label = provider.label
        if call.texts is None and not self.tokens:
            raise RequestInvalid(
                f"{label} embeds text only: send 'input' as a string or a list of strings, "
                "not token arrays."
            )
        payload: dict[str, Any] = {"model": target.model, "input": call.input}
        translate(provider.rules, label, call.params, drop, payload)
        for name, value in (
            ("encoding_format", call.encoding_format),
            ("dimensions", call.dimensions),
        ):
            if value is not None:
                payload[self.rename.get(name, name)] = value
        return UpstreamCall(
            url=f"{target.base_url}/embeddings{target.query}",
            headers={
                **provider.auth_headers(target.key),
                **target.headers,
                "Content-Type": "application/json",
            },
            body=_encode(payload),
        )

    def parse(self, answer: Any) -> tuple[list[Any], dict[str, int] | None]:
        items = answer["data"]
        if all(isinstance(item["index"], int) for item in items):
            items = sorted(items, key=lambda item: item["index"])
        usage = answer.get("usage") or {}
        prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
        return [item["embedding"] for item in items], token_usage(prompt, total)


OPENAI_FAMILY = OpenAIFamily()
OPENAI_EMBEDDINGS = OpenAIEmbeddings()
