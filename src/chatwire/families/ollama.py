"""The Ollama family: ``POST /api/chat``, newline-delimited JSON, no key.

Messages keep their role (``developer`` is ``system``), their text joined and their images
inline (``images``, base64; Ollama cannot fetch a link). An assistant's tool calls go back with
their arguments parsed; a tool result carries the name of the function it answers
(``tool_name``), found by its ``tool_call_id`` among the earlier calls. The sampling
parameters go into ``options`` (``num_predict`` the budget), ``response_format`` becomes
``format``, function tools pass in their own shape. ``reasoning_effort`` is ``think`` (false
for ``none``, else true); the thinking a reply then carries is ``reasoning_content``.

Ollama has no ``tool_choice``: ``auto`` is what it does, ``none`` sends no tools. A choice it
cannot honour (``required``, a named function, ``parallel_tool_calls: false``) is passed
over: the tools are sent, Ollama decides, and the reply says so in its
``X-Chatwire-Tool-Choice: ignored`` header (``IGNORED``). Structured-output libraries
(instructor, pydantic-ai) force a tool this way and work so. The option ``strict_tool_choice``
(``CHATWIRE_OLLAMA_STRICT_TOOL_CHOICE=true``) refuses such a choice by name instead.

Ollama answers with whole tool calls, arguments as a JSON object, in a ``done: false`` line of
their own, and ends such a reply with ``done_reason: "stop"``; since 0.12.10 each call carries
an ``id``, before that none. Each call goes to the client as one OpenAI tool-call delta
(Ollama's id, else one of chatwire's own; the arguments as JSON text), and the reply finishes
with ``tool_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import (
    BASE_FIELDS,
    DROP_HINT,
    Image,
    call_arguments,
    check_fields,
    clamp_temperature,
    content_parts,
    number,
    reply_budget,
    stop_sequences,
)
from chatwire.families.openai_reply import mid_stream
from chatwire.gateway.call import delta, new_call_id
from chatwire.gateway.embedding_call import token_usage
from chatwire.gateway.lines import ANY_JSON, DeltaReader, TextReader
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.gateway.call import ChatCall
    from chatwire.gateway.embedding_call import EmbeddingCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider

# The sampling parameters Ollama takes in ``options`` under the same names.
_OPTIONS = ("top_p", "seed", "presence_penalty", "frequency_penalty")
ACCEPTED = BASE_FIELDS | {
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "response_format",
    "reasoning_effort",
    *_OPTIONS,
}
# A local server answers its model list at once, or is not running.
DISCOVERY_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
# The header a reply carries when a tool_choice Ollama cannot honour was passed over.
IGNORED = (b"x-chatwire-tool-choice", b"ignored")
_encode = msgspec.json.Encoder().encode


class OllamaFamily:
    name = "ollama"

    def build(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        entry: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        params, label = call.params, provider.label
        check_fields(label, params, ACCEPTED, drop)
        payload: dict[str, Any] = {
            "model": target.model,
            "messages": _messages(label, call.message_dicts()),
            "stream": True,
        }
        options = _options(provider, params, entry)
        if options:
            payload["options"] = options
        tools = _tools(label, params, drop or not strict(provider))
        if tools:
            payload["tools"] = tools
        effort = params.get("reasoning_effort")
        if effort is not None:
            payload["think"] = effort != "none"
        answer_format = _format(label, params.get("response_format"), drop)
        if answer_format is not None:
            payload["format"] = answer_format
        return UpstreamCall(
            url=f"{target.base_url}/api/chat",
            headers={**provider.auth_headers(target.key), "Content-Type": "application/json"},
            body=_encode(payload),
        )

    def text_reader(self, provider: Provider) -> TextReader:
        return _TextLines(_TEXT_LINE)

    def reader(self, provider: Provider, call: ChatCall) -> DeltaReader:
        return Lines()

    def key_rejected(self, status: int, body: bytes) -> bool:
        return False

    async def discover(
        self, http: aiohttp.ClientSession, provider: Provider
    ) -> list[tuple[str, ModelEntry]] | None:
        """The models the Ollama server has pulled (``GET /api/tags``), with what it says of
        them (newer servers: the context length, and "vision" or "embedding" among the
        capabilities)."""
        from chatwire.catalogue import ModelEntry

        async with http.get(
            f"{provider.base_url}/api/tags", timeout=DISCOVERY_TIMEOUT, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                return []
            listed = ANY_JSON.decode(await resp.read())
        found = []
        for tag in listed.get("models") or ():
            name = tag.get("name") if isinstance(tag, dict) else None
            if not isinstance(name, str) or not name:
                continue
            details = tag.get("details") if isinstance(tag.get("details"), dict) else {}
            context = details.get("context_length")
            capabilities = tag.get("capabilities")
            listed_ones = capabilities if isinstance(capabilities, list) else []
            entry = ModelEntry(
                label=name,
                context=context if isinstance(context, int) and context > 0 else None,
                max_temperature=2.0,
                image_input="vision" in listed_ones,
                # An embedding model (nomic-embed-text...) says "embedding" and not "completion".
                kind="embedding"
                if "embedding" in listed_ones and "completion" not in listed_ones
                else "chat",
            )
            found.append((name, entry))
        return found

    def response_headers(self, provider: Provider, call: ChatCall) -> list[tuple[bytes, bytes]]:
        """A tool choice passed over is said so."""
        if strict(provider) or not call.params.get("tools"):
            return []
        choice = call.params.get("tool_choice")
        forced = choice not in (None, "auto", "none")
        if forced or call.params.get("parallel_tool_calls") is False:
            return [IGNORED]
        return []


def strict(provider: Provider) -> bool:
    """Whether a tool choice Ollama cannot honour is refused
    (``CHATWIRE_OLLAMA_STRICT_TOOL_CHOICE``)."""
    return provider.options.get("strict_tool_choice", "false").lower() in ("1", "true", "yes")


def _messages(label: str, given: list[Any]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # call id -> function name
    out = []
    for index, message in enumerate(given):
        if not isinstance(message, dict):
            raise RequestInvalid(f"messages[{index}] must be an object with a role.")
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise RequestInvalid(
                f"messages[{index}] has the role {role!r}; {label} takes system, developer, "
                "user, assistant and tool messages."
            )
        texts: list[str] = []
        images: list[str] = []
        for part in content_parts(label, index, message):
            if isinstance(part, Image):
                if part.data is None:
                    raise RequestInvalid(
                        f"{label} takes images inline only: send messages[{index}]'s image as a "
                        "data: URL (data:image/png;base64,...) instead of a link."
                    )
                images.append(part.data)
            elif part:
                texts.append(part)
        result: dict[str, Any] = {"role": role, "content": "\n\n".join(texts)}
        if images:
            result["images"] = images
        calls = message.get("tool_calls")
        if role == "assistant" and calls:
            if not isinstance(calls, list):
                raise RequestInvalid(f"messages[{index}].tool_calls must be a list.")
            result["tool_calls"] = [
                _call(index, position, call, names) for position, call in enumerate(calls)
            ]
        elif role == "tool":
            result["tool_name"] = _answered(index, message.get("tool_call_id"), names)
        out.append(result)
    return out


def _answered(index: int, call_id: Any, names: Mapping[str, str]) -> str:
    if not isinstance(call_id, str):
        raise RequestInvalid(
            f"messages[{index}] is a tool result without a tool_call_id: give it the id "
            "of the tool call it answers."
        )
    if call_id not in names:
        raise RequestInvalid(
            f"messages[{index}] is a tool result for tool_call_id {call_id!r}, but no "
            "earlier assistant message made a tool call with that id: send the "
            "assistant message with its tool_calls before the results."
        )
    return names[call_id]


def _call(index: int, position: int, call: Any, names: dict[str, str]) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{position}]"
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestInvalid(f"{where} needs a function with a name and arguments.")
    arguments = call_arguments(where, function)
    if isinstance(call.get("id"), str):
        names[call["id"]] = function["name"]
    return {"function": {"name": function["name"], "arguments": arguments}}


def _options(
    provider: Provider, params: Mapping[str, Any], entry: ModelEntry | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    value = clamp_temperature(provider.rules, number(params, "temperature"), entry)
    if value is not None:
        options["temperature"] = value
    budget = reply_budget(provider.rules, params, entry)
    if budget is not None:
        options["num_predict"] = budget
    for name in _OPTIONS:
        if params.get(name) is not None:
            options[name] = number(params, name)
    stop = stop_sequences(params)
    if stop is not None:
        options["stop"] = stop
    return options


def _format(label: str, response_format: Any, drop: bool) -> Any:
    """Ollama's ``format``: "json" for any JSON object, else the JSON schema itself."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        described = response_format.get("json_schema")
        schema = described.get("schema") if isinstance(described, dict) else None
        if isinstance(schema, dict):
            return schema
        raise RequestInvalid(
            "response_format of type 'json_schema' needs json_schema.schema: the JSON schema "
            "the answer must follow."
        )
    if drop:
        return None
    raise RequestInvalid(
        f"{label} does not take response_format {_encode(response_format).decode()[:200]}; "
        f"use type 'text', 'json_object' or 'json_schema' {DROP_HINT}."
    )


def _tools(label: str, params: Mapping[str, Any], lenient: bool) -> list[dict[str, Any]]:
    """The tools to send: none with tool_choice "none", else every function tool; a choice
    Ollama cannot honour is refused unless ``lenient``."""
    tools = params.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestInvalid("'tools' must be a list of function tools.")
    choice = params.get("tool_choice")
    if params.get("parallel_tool_calls") is False and not lenient:
        raise RequestInvalid(
            f"{label} cannot be kept to one tool call per reply (parallel_tool_calls false); "
            f"leave parallel_tool_calls out {DROP_HINT}."
        )
    if choice == "none":
        return []
    if choice not in (None, "auto") and not lenient:
        raise RequestInvalid(f"{label} {_choice_refusal(choice)}")
    return [_tool(index, tool) for index, tool in enumerate(tools)]


def _choice_refusal(choice: Any) -> str:
    named = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(named, dict) and isinstance(named.get("name"), str):
        what = f"to call the function {named['name']!r} (tool_choice names it)"
    elif choice == "required":
        what = "to call a tool (tool_choice 'required')"
    else:
        what = f"to follow tool_choice {_encode(choice).decode()[:200]}"
    return (
        f"cannot be made {what}: it decides for itself whether to call one. Leave tool_choice "
        f"out or set it to 'auto' or 'none' {DROP_HINT}."
    )


def _tool(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
    ):
        raise RequestInvalid(
            f"tools[{index}] is not a function tool: send "
            '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
        )
    # OpenAI's "strict" has no counterpart in Ollama's tools.
    kept = {key: function[key] for key in ("name", "description", "parameters") if key in function}
    return {"type": "function", "function": kept}


# The reply as text: typed, reading only the message's text and the end.


class _TextMessage(msgspec.Struct):
    content: str = ""


class _TextLine(msgspec.Struct):
    message: _TextMessage | None = None
    done: bool = False
    error: str | None = None
    # On the last line only.
    prompt_eval_count: int = 0
    eval_count: int = 0


_TEXT_LINE = msgspec.json.Decoder(_TextLine)


class _TextLines(TextReader):
    """One JSON object per line; ``done: true`` ends the reply."""

    __slots__ = ()

    def item(self, item: _TextLine) -> str | None:
        if item.error is not None:
            raise mid_stream(item.error)
        if item.done:
            self.finished = True
            prompt, completion = item.prompt_eval_count, item.eval_count
            self.usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return item.message.content if item.message is not None else None


# The reply as deltas.


class Lines(DeltaReader):
    __slots__ = ("_calls", "_started")

    def __init__(self) -> None:
        super().__init__(ANY_JSON)
        self._calls = 0
        self._started = False

    def item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        message = item.get("message") or {}
        text = message.get("content") or ""
        thinking = message.get("thinking")
        out = [delta(text)] if text else []
        if isinstance(thinking, str) and thinking:
            change = {"reasoning_content": thinking}
            out.insert(0, {"choices": [{"index": 0, "delta": change, "finish_reason": None}]})
        calls = message.get("tool_calls")
        if calls:
            out.append(self._call_deltas(calls))
        if item.get("done"):
            self.finished = True
            prompt, completion = item.get("prompt_eval_count", 0), item.get("eval_count", 0)
            self.usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if item.get("done_reason") == "length":
                reason = "length"
            else:
                # Ollama says "stop" after a tool call too; OpenAI's clients look for this.
                reason = "tool_calls" if self._calls else "stop"
            out.append(delta(finish=reason))
        if out and not self._started:
            # OpenAI's clients (the Node SDK's stream helpers) want the role in the first delta.
            self._started = True
            out[0]["choices"][0]["delta"]["role"] = "assistant"
        return out

    def _call_deltas(self, calls: Any) -> dict[str, Any]:
        """Ollama's whole calls as OpenAI's first (and only) delta of each call."""
        pieces: list[dict[str, Any]] = []
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = _encode(arguments if arguments is not None else {}).decode()
            call_id = call.get("id")
            pieces.append(
                {
                    "index": self._calls,
                    "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    "type": "function",
                    "function": {"name": function.get("name") or "", "arguments": arguments},
                }
            )
            self._calls += 1
        return delta(tool_calls=pieces)


class OllamaEmbeddings:
    """Embeddings: ``POST /api/embed`` with the input text or texts and ``dimensions``; the
    answer's ``embeddings`` in input order, its ``prompt_eval_count`` as the input tokens.
    Token arrays and OpenAI's other parameters (``user``) have no equivalent: a 400 naming
    them (``CHATWIRE_DROP_PARAMS`` drops them)."""

    __slots__ = ()

    def build(
        self, provider: Provider, target: Target, call: EmbeddingCall, drop: bool
    ) -> UpstreamCall:
        label = provider.label
        if call.texts is None:
            raise RequestInvalid(
                f"{label} embeds text only: send 'input' as a string or a list of strings, "
                "not token arrays."
            )
        check_fields(label, call.params, (), drop)
        payload: dict[str, Any] = {"model": target.model, "input": call.input}
        if call.dimensions is not None:
            payload["dimensions"] = call.dimensions
        return UpstreamCall(
            url=f"{target.base_url}/api/embed",
            headers={**provider.auth_headers(target.key), "Content-Type": "application/json"},
            body=_encode(payload),
        )

    def parse(self, answer: Any) -> tuple[list[Any], dict[str, int] | None]:
        vectors = answer["embeddings"]
        if not isinstance(vectors, list):
            raise TypeError("embeddings is not a list")
        return vectors, token_usage(answer.get("prompt_eval_count"))


OLLAMA_FAMILY = OllamaFamily()
OLLAMA_EMBEDDINGS = OllamaEmbeddings()
