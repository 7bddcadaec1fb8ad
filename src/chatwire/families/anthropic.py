"""The Anthropic family: the Messages API, ``POST /v1/messages``, its own server-sent events.

The request: system (and developer) messages before the conversation become ``system``; the
turns alternate user / assistant, turns of one side in a row merged, as the API wants; within a
user turn, tool results come first, as it also wants. An assistant message's ``tool_calls``
become ``tool_use`` blocks after its text (arguments parsed into the ``input`` object); a
``tool`` message becomes a ``tool_result`` block. Images become base64 (or URL) image blocks.
``max_tokens`` is required: the client's, else the catalogue's, else 4096. ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``stop``, ``top_p``, ``top_k`` and ``user`` have
direct equivalents; ``reasoning_effort`` is extended thinking with the budget of
``THINKING_BUDGETS``, within ``max_tokens`` as OpenAI counts reasoning in the reply's budget
(and no temperature or top_k, and a top_p of 0.95 or more, which thinking refuses); a
``response_format`` of type ``json_schema`` is structured outputs' ``output_config.format``
(Anthropic has no JSON mode without a schema); any other parameter is refused by name (or
dropped).

With thinking on, an assistant message's signed reasoning (``reasoning_content`` and
``reasoning_signature``, as the reply gave them) is its turn's first block, a ``thinking``
block, as Anthropic wants it given back, and its redacted reasoning (``reasoning_redacted``,
the data of each ``redacted_thinking`` block) the ``redacted_thinking`` blocks after it.
Anthropic refuses a request whose last assistant turn calling a tool does not start with its
thinking; when that turn was given back without it, the request goes without thinking (which
Anthropic allows), said in a debug log.

The reply: text deltas as content; thinking as ``reasoning_content`` and a thinking block's
signature, once it ends, as ``reasoning_signature``; a ``redacted_thinking`` block's data as
``reasoning_redacted``; each ``tool_use`` block as one OpenAI tool
call, numbered from 0 in the order the blocks start, delivered whole once its arguments are
complete.

A body already in the Messages API's own shape (chatwire's ``/v1/messages``) is forwarded as
sent (``forward``): only its model is the provider's id, and the client's
``anthropic-version`` and ``anthropic-beta`` go with it; its reply's bytes are relayed
unchanged (``Relayed``), the usage read on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.anthropic_relay import Relayed, RelayedAnswer, added_usage
from chatwire.families.base import (
    BASE_FIELDS,
    CatalogueModels,
    call_arguments,
    check_fields,
    clamp_temperature,
    content_parts,
    number,
    reply_budget,
    stop_sequences,
    text_of,
)
from chatwire.families.base import Image as ImagePiece
from chatwire.families.openai import mid_stream
from chatwire.gateway.call import delta
from chatwire.gateway.lines import ANY_JSON, DeltaReader, Relay, TextReader
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.dialects.base import Native
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider

DEFAULT_MAX_TOKENS = 4096
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ACCEPTED = BASE_FIELDS | {
    "reasoning_effort",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "top_p",
    "top_k",
    "user",
}
# reasoning_effort as extended thinking's budget, in tokens; "none" is no thinking.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING = 1024
_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
_ROLES = "system, developer, user, assistant or tool"
_encode = msgspec.json.Encoder().encode
log = logging.getLogger("chatwire.chat")


class AnthropicFamily(CatalogueModels):
    name = "anthropic"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        params, label = call.params, provider.label
        output_format = _output_format(params.get("response_format"))
        accepted = ACCEPTED if output_format is None else ACCEPTED | {"response_format"}
        check_fields(label, params, accepted, drop)
        max_tokens = reply_budget(provider.rules, params, entry) or DEFAULT_MAX_TOKENS
        thinking = _thinking(params.get("reasoning_effort"), max_tokens)
        messages = call.message_dicts()
        system, turns = conversation(label, messages, thinking=thinking is not None)
        if thinking is not None and not _thinking_given_back(turns):
            log.debug(
                "%s: extended thinking off for this request: its last tool-calling assistant "
                "turn came back without its signed thinking, which Anthropic requires",
                label,
            )
            thinking = None
            system, turns = conversation(label, messages)
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": turns,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if system:
            payload["system"] = system
        if thinking is not None:
            payload["thinking"] = thinking
        payload.update(_sampling(provider, params, entry))
        if thinking is not None:
            # What extended thinking refuses.
            payload.pop("temperature", None)
            payload.pop("top_k", None)
            if payload.get("top_p", 1) < 0.95:
                del payload["top_p"]
        payload.update(_tooling(params))
        if output_format is not None:
            payload["output_config"] = {"format": output_format}
        return UpstreamCall(
            url=f"{target.base_url}/messages",
            headers={
                **provider.auth_headers(target.key),
                "anthropic-version": provider.options.get("version", "2023-06-01"),
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
            body=_encode(payload),
        )

    def forward(self, provider: Provider, target: Target, native: Native) -> UpstreamCall:
        """A Messages API body as the client sent it, to the provider's own endpoint."""
        raw = native.raw
        if native.body.get("model") != target.model:
            raw = _encode({**native.body, "model": target.model})
        headers = {
            **provider.auth_headers(target.key),
            "anthropic-version": native.headers.get("anthropic-version")
            or provider.options.get("version", "2023-06-01"),
            "Content-Type": "application/json",
        }
        beta = native.headers.get("anthropic-beta")
        if beta is not None:
            headers["anthropic-beta"] = beta
        if native.stream:
            headers["Accept"] = "text/event-stream"
        query = f"?{native.query}" if native.query else ""
        return UpstreamCall(
            url=f"{target.base_url}{native.endpoint}{query}", headers=headers, body=raw
        )

    def relay_reader(self, provider: Provider, native: Native) -> Relay:
        return Relayed() if native.stream else RelayedAnswer()

    def text_reader(self, provider: Provider) -> TextReader:
        return _TextEvents(_EVENT)

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        return Events()

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False  # Anthropic refuses a key with 401 authentication_error


# The request.


def conversation(
    label: str, messages: Any, *, thinking: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` text and the turns for the client's ``messages``.

    ``system`` and ``developer`` messages before the first turn are joined into ``system``; a
    later one is kept as the user's words, where it was said. With ``thinking``, an assistant
    message's signed reasoning starts its turn as a ``thinking`` block (without, it is left
    out: Anthropic refuses thinking in a final assistant turn when thinking is off).
    """
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("'messages' must be a non-empty list of chat messages.")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestInvalid(f"messages[{index}] must be an object with a role.")
        role = message.get("role")
        if role in ("system", "developer"):
            parts = content_parts(label, index, message)
            if not turns:
                text = text_of(parts)
                if text:
                    system.append(text)
                continue
            _append(turns, "user", blocks(parts))
        elif role == "user":
            _append(turns, "user", blocks(content_parts(label, index, message)))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise RequestInvalid(f"messages[{index}].tool_calls must be a list.")
            uses = [_tool_use(index, number, call) for number, call in enumerate(calls)]
            said = blocks(content_parts(label, index, message))
            if thinking:
                said = _signed_thinking(message) + said
            _append(turns, "assistant", said + uses)
        elif role == "tool":
            _append(turns, "user", [_tool_result(label, index, message)])
        else:
            raise RequestInvalid(
                f"messages[{index}] has the role {role!r}; {label} takes {_ROLES}."
            )
    return "\n\n".join(system), turns


def _signed_thinking(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The thinking blocks of an assistant message: its signed reasoning's, if it has one,
    then its redacted reasoning's."""
    found: list[dict[str, Any]] = []
    text, signature = message.get("reasoning_content"), message.get("reasoning_signature")
    if isinstance(signature, str) and signature and isinstance(text, str):
        found.append({"type": "thinking", "thinking": text, "signature": signature})
    redacted = message.get("reasoning_redacted")
    if redacted is not None:
        if not isinstance(redacted, list) or not all(isinstance(d, str) for d in redacted):
            raise RequestInvalid(
                "'reasoning_redacted' must be the list of redacted thinking data a reply gave."
            )
        found.extend({"type": "redacted_thinking", "data": data} for data in redacted if data)
    return found


def _thinking_given_back(turns: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn, when it calls a tool, starts with its thinking, as
    Anthropic requires with thinking on (earlier turns may go without)."""
    for turn in reversed(turns):
        if turn["role"] != "assistant":
            continue
        content: list[dict[str, Any]] = turn["content"]
        if not any(block["type"] == "tool_use" for block in content):
            return True
        return content[0]["type"] in ("thinking", "redacted_thinking")
    return True


def blocks(parts: list[str | ImagePiece]) -> list[dict[str, Any]]:
    """A message's text and image parts as Messages API content blocks."""
    found: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, str):
            if part:
                found.append({"type": "text", "text": part})
        elif part.data is not None:
            source = {"type": "base64", "media_type": part.media_type, "data": part.data}
            found.append({"type": "image", "source": source})
        else:
            found.append({"type": "image", "source": {"type": "url", "url": part.url}})
    return found


def _append(turns: list[dict[str, Any]], role: str, new: list[dict[str, Any]]) -> None:
    if not new:
        return
    if not turns or turns[-1]["role"] != role:
        turns.append({"role": role, "content": new})
        return
    content: list[dict[str, Any]] = turns[-1]["content"]
    if new[0]["type"] == "tool_result":
        results = 0
        while results < len(content) and content[results]["type"] == "tool_result":
            results += 1
        content[results:results] = new
    else:
        content.extend(new)


def _tool_use(index: int, number: int, call: Any) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{number}]"
    function = call.get("function") if isinstance(call, dict) else None
    if (
        not isinstance(function, dict)
        or call.get("type", "function") != "function"
        or not isinstance(call.get("id"), str)
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"{where} must be a function call with an id: "
            '{"id": ..., "type": "function", "function": {"name": ..., "arguments": "{...}"}}.'
        )
    arguments = call_arguments(where, function)
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(label: str, index: int, message: dict[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestInvalid(
            f"messages[{index}] (role tool) needs the tool_call_id of the call it answers."
        )
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            result["content"] = content
    else:
        found = blocks(content_parts(label, index, message))
        if found:
            result["content"] = found
    return result


def _sampling(
    provider: Provider, params: Mapping[str, Any], entry: ModelEntry | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Clamped to the model's range from the catalogue.
    value = clamp_temperature(provider.rules, number(params, "temperature"), entry)
    if value is not None:
        out["temperature"] = value
    top_p = number(params, "top_p")
    # Claude 4.5 and later refuse both at once; OpenAI clients often send both: the
    # temperature, the setting people actually tune, is kept.
    if top_p is not None and "temperature" not in out:
        out["top_p"] = top_p
    top_k = params.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise RequestInvalid("'top_k' must be an integer.")
        out["top_k"] = top_k
    stop = stop_sequences(params)
    if stop is not None:
        out["stop_sequences"] = stop
    user = params.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise RequestInvalid("'user' must be a string.")
        out["metadata"] = {"user_id": user}
    return out


def _output_format(value: Any) -> dict[str, Any] | None:
    """A json_schema ``response_format`` as structured outputs' format, else None."""
    if not isinstance(value, dict) or value.get("type") != "json_schema":
        return None
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        return None
    schema = spec.get("schema")
    return {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else None


def _thinking(effort: Any, max_tokens: int) -> dict[str, Any] | None:
    """Extended thinking for a reasoning effort; its budget within the reply's, which
    Anthropic counts it in."""
    if effort is None or effort == "none":
        return None
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise RequestInvalid(
            f"reasoning_effort must be none, {', '.join(THINKING_BUDGETS)}, not {effort!r:.50}."
        )
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING:
        raise RequestInvalid(
            f"reasoning_effort needs a reply budget above {MIN_THINKING} tokens (Anthropic's "
            f"least thinking budget), not {max_tokens}: raise max_tokens or leave it out."
        )
    return {"type": "enabled", "budget_tokens": budget}


def _tooling(params: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in Anthropic's shapes."""
    given = params.get("tools")
    if given is not None and not isinstance(given, list):
        raise RequestInvalid("'tools' must be a list of function tools.")
    tools = [_tool(index, tool) for index, tool in enumerate(given or ())]
    choice = _choice(params.get("tool_choice"))
    if not tools:
        # Anthropic refuses any tool_choice without tools; "auto", "none" and
        # parallel_tool_calls mean nothing then, a forced call cannot be made.
        if choice is not None and choice["type"] in ("any", "tool"):
            raise RequestInvalid(
                "tool_choice asks for a tool call but the request has no tools: "
                "send the tools, or leave tool_choice out."
            )
        return {}
    parallel = params.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise RequestInvalid("'parallel_tool_calls' must be true or false.")
    if parallel is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    out: dict[str, Any] = {"tools": tools}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(function, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"tools[{index}] must be a function tool: "
            '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
        )
    schema = function.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif not isinstance(schema, dict):
        raise RequestInvalid(f"tools[{index}].function.parameters must be a JSON schema object.")
    elif "type" not in schema:
        # OpenAI takes a schema without its type; Anthropic wants "object" said.
        schema = {"type": "object", **schema}
    out: dict[str, Any] = {"name": function["name"]}
    description = function.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    out["input_schema"] = schema
    return out


def _choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICES:
        return {"type": _CHOICES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if (
        isinstance(function, dict)
        and choice.get("type") == "function"
        and isinstance(function.get("name"), str)
    ):
        return {"type": "tool", "name": function["name"]}
    raise RequestInvalid(
        "tool_choice must be 'auto', 'required', 'none' or "
        '{"type": "function", "function": {"name": ...}}.'
    )


# The reply as text: typed, reading only the text deltas and the end.


class _TextDelta(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _Message(msgspec.Struct):
    usage: dict[str, Any] | None = None


class _Event(msgspec.Struct):
    type: str
    delta: _TextDelta | None = None
    error: Any = None
    # message_start's message (its usage), message_delta's usage: decoded only there.
    message: _Message | None = None
    usage: dict[str, Any] | None = None


_EVENT = msgspec.json.Decoder(_Event)


class _TextEvents(TextReader):
    """Text arrives in content_block_delta; message_stop ends the reply. The "event:" lines
    repeat the type that each data value carries itself."""

    __slots__ = ()
    prefix = b"data:"

    def item(self, event: _Event) -> str | None:
        if event.type == "content_block_delta":
            change = event.delta
            return change.text if change is not None and change.type == "text_delta" else None
        if event.type == "message_stop":
            self.finished = True
        elif event.type == "message_delta":
            if event.usage:
                self.usage = added_usage(self.usage, event.usage)
        elif event.type == "message_start":
            if event.message is not None and event.message.usage:
                self.usage = added_usage(self.usage, event.message.usage)
        elif event.type == "error":
            raise mid_stream(event.error)
        return None


# The reply as deltas.


class Events(DeltaReader):
    __slots__ = ("_calls", "_open", "_signature")
    prefix = b"data:"

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._calls: dict[Any, int] = {}  # content block index -> tool call index
        # The signature of the thinking block being read, given once the block ends.
        self._signature: Any = None
        # Tool calls whose arguments are still arriving: the call, its pieces.
        self._open: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item.get("type")
        if kind == "content_block_delta":
            change = item.get("delta") or {}
            kind = change.get("type")
            if kind == "text_delta":
                return [delta(change.get("text", ""))]
            if kind == "input_json_delta":
                self._arguments(item.get("index"), change.get("partial_json"))
            elif kind == "thinking_delta":
                return [_reasoning("reasoning_content", change.get("thinking", ""))]
            elif kind == "signature_delta":
                self._signature = change.get("signature")
        elif kind == "content_block_start":
            return self._start(item.get("index"), item.get("content_block") or {})
        elif kind == "content_block_stop":
            return self._stop(item.get("index"))
        elif kind == "message_start":
            usage = (item.get("message") or {}).get("usage") or {}
            self.usage = added_usage(self.usage, usage)
            return [delta("", role="assistant")]
        elif kind == "message_delta":
            self.usage = added_usage(self.usage, item.get("usage") or {})
            reason = (item.get("delta") or {}).get("stop_reason")
            if reason:
                return [delta(finish=FINISH.get(reason, "stop"))]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise mid_stream(item.get("error"))
        return []

    def _start(self, index: Any, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "tool_use":
            call = len(self._calls)
            self._calls[index] = call
            first = {
                "index": call,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            self._open[call] = (first, [])
            return []
        if block.get("type") == "text" and block.get("text"):
            return [delta(block["text"])]
        if block.get("type") == "thinking" and block.get("thinking"):
            return [_reasoning("reasoning_content", block["thinking"])]
        if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            return [_reasoning("reasoning_redacted", block["data"])]
        return []

    def _arguments(self, index: Any, piece: Any) -> None:
        call = self._calls.get(index)
        if call is not None and call in self._open and isinstance(piece, str):
            self._open[call][1].append(piece)

    def _stop(self, index: Any) -> list[dict[str, Any]]:
        """A tool call is complete: it goes to the client whole, in one delta, as Mistral
        sends calls (its SDKs refuse a delta without the function's name)."""
        call = self._calls.get(index)
        opened = self._open.pop(call, None) if call is not None else None
        if opened is None:
            signature, self._signature = self._signature, None
            if isinstance(signature, str) and signature:
                return [_reasoning("reasoning_signature", signature)]
            return []
        first, pieces = opened
        # A call without arguments streams no JSON at all; OpenAI's clients parse "{}".
        first["function"]["arguments"] = "".join(pieces) or "{}"
        return [delta(tool_calls=[first])]


def _reasoning(key: str, value: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {key: value}, "finish_reason": None}]}


ANTHROPIC_FAMILY = AnthropicFamily()
