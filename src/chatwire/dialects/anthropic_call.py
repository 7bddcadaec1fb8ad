"""A Messages API body as the canonical call, for a provider that does not speak it.

``system`` (a string or text blocks) becomes a system message; each message's blocks become
OpenAI's: text and images (base64 as a data URL, a URL as it is) as content parts, an
assistant's ``tool_use`` blocks as its ``tool_calls``, a user's ``tool_result`` blocks as
``tool`` messages (the text after them in the same turn, which Claude Code sends, goes with
the last one: Mistral takes no user message right after tool results). A ``system``
message among them (Claude Code sends some) is a system message before the first turn, the
user's words after it, where it was said: providers such as Mistral refuse a system message
later in a conversation. Thinking blocks of earlier turns are Anthropic's own signed
reasoning: no other provider can take them, and they are left out. What says nothing about
the answer is left out too (``HINTS``: ``cache_control`` marks, ``metadata``,
``service_tier``, and ``context_management``, which asks Anthropic to trim old turns: the
provider gets them all).

Parameters: ``max_tokens``, ``temperature``, ``top_p`` and ``top_k`` keep their names,
``stop_sequences`` is ``stop``; ``tools`` (custom tools) become function tools, ``tool_choice``
``auto`` / ``any`` / ``tool`` / ``none`` is ``auto`` / ``required`` / the named function /
``none``, and ``disable_parallel_tool_use`` is ``parallel_tool_calls: false``; ``thinking``
becomes ``reasoning_effort`` by its budget (``REASONING``), or ``output_config.effort`` as it
is (``max`` is ``high``), which each family maps to its provider's own control or refuses by
name; ``output_config.format`` (a JSON schema) is ``response_format``. What only Anthropic
has (server tools, documents, ``container``, ``mcp_servers``...) is refused with a 400 naming
it, or dropped with ``CHATWIRE_DROP_PARAMS``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import DROP_HINT
from chatwire.gateway.call import ChatCall

# Fields of the body read here; any other is Anthropic's alone.
KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
    }
)
# Fields that change nothing of the answer, left out for other providers.
HINTS = frozenset({"metadata", "service_tier", "context_management"})
# A thinking budget below each bound is that effort; at or past the last, "high".
REASONING = ((4096, "low"), (16384, "medium"))
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# About as many characters of text make a token, for an estimated count; an image counts as
# Anthropic's documented figure for a picture of about a megapixel.
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
_encode = msgspec.json.Encoder().encode


def translate(call: ChatCall, body: dict[str, Any], drop: bool, counting: bool = False) -> None:
    """Fill ``call`` (its model already resolved) from the Messages API ``body``."""
    for name in body:
        if name not in KNOWN and name not in HINTS and body[name] is not None:
            _anthropic_only(f"'{name}'", drop)
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _system(system)
        if text:
            messages.append({"role": "system", "content": text})
    given = body.get("messages")
    if not isinstance(given, list) or not given:
        raise RequestInvalid("messages: a non-empty list of messages is required.")
    for index, message in enumerate(given):
        for turn in _message(index, message, drop):
            _add(messages, turn)
    params: dict[str, Any] = {}
    budget = body.get("max_tokens")
    if budget is not None or not counting:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise RequestInvalid("max_tokens: a whole number of at least 1 is required.")
        params["max_tokens"] = budget
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            params[name] = body[name]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestInvalid("stop_sequences: Input should be a valid list of strings")
        if stop:
            params["stop"] = stop
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise RequestInvalid("tools: Input should be a valid list")
        functions = [f for i, t in enumerate(tools) if (f := _tool(i, t, drop)) is not None]
        if functions:
            params["tools"] = functions
    params.update(_choice(body.get("tool_choice"), "tools" in params))
    effort = _effort(body.get("thinking"))
    config = body.get("output_config")
    if config is not None:
        effort, answer_format = _output_config(config, effort, drop)
        if answer_format is not None:
            params["response_format"] = answer_format
    if effort is not None:
        params["reasoning_effort"] = effort
    call.messages = messages
    call.params = params
    # The upstream streams, whatever the client asked: a whole message is gathered from the
    # same deltas, with the usage.
    call.stream = True
    call.include_usage = True


def _add(messages: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    """A turn added where the conversation is: a system turn after the first words is the
    user's; words right after tool results go with the last result (Mistral takes no user
    message after tool messages)."""
    if turn["role"] == "system" and any(m["role"] != "system" for m in messages):
        turn = {"role": "user", "content": turn["content"]}
    last = messages[-1] if messages else None
    if (
        last is not None
        and last["role"] == "tool"
        and turn["role"] == "user"
        and isinstance(turn["content"], str)
    ):
        said = turn["content"]
        last["content"] = f"{last['content']}\n\n{said}" if last["content"] else said
        return
    messages.append(turn)


def _anthropic_only(what: str, drop: bool) -> None:
    if not drop:
        raise RequestInvalid(
            f"{what} is a Messages API feature only Anthropic's models take through "
            f"chatwire; leave it out {DROP_HINT}."
        )


def _system(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise RequestInvalid(f"system.{index}: only text blocks are taken here.")
            if not isinstance(block.get("text"), str):
                raise RequestInvalid(f"system.{index}.text: Input should be a valid string")
            texts.append(block["text"])
        return "\n\n".join(texts)
    raise RequestInvalid("system: Input should be a string or a list of text blocks")


def _message(index: int, message: Any, drop: bool) -> list[dict[str, Any]]:
    where = f"messages.{index}"
    if not isinstance(message, dict):
        raise RequestInvalid(f"{where}: Input should be an object with a role and content")
    role = message.get("role")
    if role == "system":
        return [{"role": "system", "content": _system(message.get("content"))}]
    if role not in ("user", "assistant"):
        raise RequestInvalid(f"{where}.role: Input should be 'user', 'assistant' or 'system'")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise RequestInvalid(f"{where}.content: Input should be a string or a list of blocks")
    if role == "assistant":
        return [_assistant(where, content, drop)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for number, block in enumerate(content):
        at = f"{where}.content.{number}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            if parts:
                out.append({"role": "user", "content": _content(parts)})
                parts = []
            out.append(_result(at, block, drop))
        elif kind in ("text", "image"):
            part = _part(at, block, drop)
            if part:
                parts.append(part)
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            _anthropic_only(f"{at}: a block of type {kind!r}", drop)
    if parts:
        out.append({"role": "user", "content": _content(parts)})
    return out


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text alone as one string, as every provider takes it; with images, the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _assistant(where: str, content: list[Any], drop: bool) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for number, block in enumerate(content):
        at = f"{where}.content.{number}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise RequestInvalid(f"{at}.text: Input should be a valid string")
            texts.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise RequestInvalid(f"{at}: a tool_use block needs its id and name")
            arguments = block.get("input", {})
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": _encode(arguments).decode()},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # Anthropic's signed reasoning: for Anthropic's models only
        else:
            _anthropic_only(f"{at}: a block of type {kind!r}", drop)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _part(at: str, block: dict[str, Any], drop: bool) -> dict[str, Any]:
    if block["type"] == "text":
        if not isinstance(block.get("text"), str):
            raise RequestInvalid(f"{at}.text: Input should be a valid string")
        return {"type": "text", "text": block["text"]}
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise RequestInvalid(f"{at}.source: a base64 image needs media_type and data")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    _anthropic_only(f"{at}.source: an image source of type {kind!r}", drop)
    return {}


def _result(at: str, block: dict[str, Any], drop: bool) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise RequestInvalid(f"{at}.tool_use_id: Field required")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for number, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                _anthropic_only(f"{at}.content.{number}: a tool result's {kind!r} block", drop)
        content = "\n\n".join(texts)
    elif not isinstance(content, str):
        raise RequestInvalid(f"{at}.content: Input should be a string or a list of blocks")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _tool(index: int, tool: Any, drop: bool) -> dict[str, Any] | None:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise RequestInvalid(f"tools.{index}: a tool needs a name")
    if tool.get("type") not in (None, "custom"):
        _anthropic_only(f"tools.{index}: the tool of type {tool['type']!r}", drop)
        return None
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise RequestInvalid(f"tools.{index}.input_schema: Field required (a JSON schema)")
    function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _choice(choice: Any, tools: bool) -> dict[str, Any]:
    if choice is None:
        return {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise RequestInvalid(
            "tool_choice: Input should be {'type': 'auto' | 'any' | 'tool' | 'none'}"
        )
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise RequestInvalid("tool_choice.tool.name: Field required")
        out: dict[str, Any] = {
            "tool_choice": {"type": "function", "function": {"name": choice["name"]}}
        }
    else:
        out = {"tool_choice": _CHOICES[kind]}
    if not tools:
        if kind in ("any", "tool"):
            raise RequestInvalid(f"tool_choice.{kind} may only be specified while providing tools")
        return {}
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _effort(thinking: Any) -> str | None:
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    if kind == "adaptive":
        return "medium"
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if kind != "enabled" or isinstance(budget, bool) or not isinstance(budget, int):
        raise RequestInvalid(
            "thinking: Input should be {'type': 'enabled', 'budget_tokens': N} or "
            "{'type': 'disabled'}"
        )
    return next((effort for bound, effort in REASONING if budget < bound), "high")


def _output_config(
    config: Any, effort: str | None, drop: bool
) -> tuple[str | None, dict[str, Any] | None]:
    if not isinstance(config, dict):
        raise RequestInvalid("output_config: Input should be an object")
    answer_format = None
    for name, value in config.items():
        if name == "effort" and value is not None:
            if value not in ("low", "medium", "high", "max"):
                raise RequestInvalid("output_config.effort: Input should be low, medium or high")
            effort = "high" if value == "max" else value
        elif name == "format" and value is not None:
            schema = value.get("schema") if isinstance(value, dict) else None
            if not isinstance(value, dict) or value.get("type") != "json_schema" or not schema:
                raise RequestInvalid(
                    "output_config.format: Input should be {'type': 'json_schema', 'schema': ...}"
                )
            answer_format = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        elif value is not None:
            _anthropic_only(f"'output_config.{name}'", drop)
    return effort, answer_format


def estimate(body: dict[str, Any]) -> int:
    """The input tokens of a Messages API body, estimated: one token per CHARS_PER_TOKEN
    characters of its text (system, messages, tool definitions), IMAGE_TOKENS per image."""
    chars, images = _count(
        [body.get("system"), body.get("messages"), body.get("tools"), body.get("tool_choice")]
    )
    return -(-chars // CHARS_PER_TOKEN) + images * IMAGE_TOKENS


def _count(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        values: Any = value
    elif isinstance(value, dict):
        if value.get("type") == "image":
            return 0, 1
        values = [v for k, v in value.items() if k not in ("type", "cache_control")]
    else:
        return 0, 0
    chars = images = 0
    for item in values:
        more, pictures = _count(item)
        chars += more
        images += pictures
    return chars, images
