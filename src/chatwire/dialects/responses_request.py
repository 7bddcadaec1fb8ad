"""A Responses API request as the canonical call: its input items as OpenAI chat messages, its
parameters under their chat-completions names.

``instructions`` become a system message before the conversation. A ``message`` item keeps
its role; its ``input_text`` / ``output_text`` parts become text (a string, unless the message
carries an image), ``input_image`` an ``image_url`` part. ``function_call`` items become the
``tool_calls`` of an assistant message (of the message just before them, when it is the
assistant's), ``function_call_output`` items ``tool`` messages. A ``reasoning`` item with its
``encrypted_content`` (the signature of a provider's thinking, as chatwire's replies give it)
goes with the assistant message that follows it, as its ``reasoning_content`` (the summary's
text) and ``reasoning_signature``, or, when it is marked as redacted (``REDACTED``), as one of
its ``reasoning_redacted``; a reasoning item without one is dropped, as no provider takes
unsigned reasoning back. An ``item_reference`` stands for an output item of one of the
caller's stored responses.

Parameters: function ``tools`` from the flat shape to the nested one (a ``namespace``'s
functions too, its name told again on their calls), ``tool_choice`` likewise,
``max_output_tokens`` as ``max_completion_tokens``, ``text.format`` as ``response_format``,
``reasoning.effort`` as ``reasoning_effort``; ``temperature``, ``top_p``,
``parallel_tool_calls`` and ``user`` as they are. What the families cannot take they refuse by
name (or drop), as on chat completions. ``metadata``, ``store``, ``previous_response_id``,
``instructions`` and ``stream`` are chatwire's own; ``include``, ``truncation``,
``prompt_cache_key``, ``client_metadata``, ``text.verbosity`` and ``reasoning.summary`` are
hints with no effect.
Responses features with no chat equivalent (hosted tools, ``background``, ``conversation``,
...) are refused by name, or dropped with CHATWIRE_DROP_PARAMS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chatwire.errors import RequestInvalid

# Fields the dialect reads itself; any other goes to the family as sent, as on chat completions.
OWN: Final = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "text",
        "reasoning",
        "metadata",
        "store",
        "previous_response_id",
        "stream",
        "stream_options",
    }
)
# Hints chatwire has no use for, taken quietly (Codex CLI sends some of them every time).
IGNORED: Final = frozenset(
    {"include", "truncation", "prompt_cache_key", "service_tier", "client_metadata"}
)
# Features without a chat-completions equivalent: refused by name, or dropped.
UNSUPPORTED: Final = frozenset(
    {"background", "conversation", "prompt", "max_tool_calls", "top_logprobs"}
)
_TEXT_PARTS: Final = frozenset({"input_text", "output_text", "text", "summary_text"})
# The mark of a reasoning item's encrypted_content that holds redacted reasoning's data (a
# signature, base64, never starts so).
REDACTED: Final = "redacted_thinking:"


def item_id(prefix: str) -> str:
    """An id as OpenAI's items carry: a prefix and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass(slots=True)
class Decoded:
    """What the dialect keeps of a Responses request besides the canonical call."""

    # The request's own input items, normalized (each with its id and type).
    items: list[dict[str, Any]]
    instructions: str | None
    params: dict[str, Any]
    # The Responses-shaped fields echoed in the response object.
    echo: dict[str, Any]
    store: bool
    previous: str | None
    stream: bool
    # Responses features given that no provider takes through chatwire (named in the 400).
    unsupported: list[str] = field(default_factory=list)
    # A namespaced function's name -> its namespace, told again on the calls of it.
    namespaces: dict[str, str] = field(default_factory=dict)


def decode_fields(fields: Mapping[str, Any]) -> Decoded:
    """The request's fields, checked and translated; a 400 naming what is wrong."""
    items = input_items(fields.get("input"))
    instructions = _optional(fields, "instructions", str, "a string")
    stream = _optional(fields, "stream", bool, "true or false") or False
    store = _optional(fields, "store", bool, "true or false")
    previous = _optional(fields, "previous_response_id", str, "a string")
    metadata = _optional(fields, "metadata", dict, "an object")
    unsupported: list[str] = []
    params: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or name in OWN or name in IGNORED:
            continue
        if name in UNSUPPORTED:
            if value is not False:
                unsupported.append(name)
            continue
        params[name] = value
    given_tools = fields.get("tools")
    namespaces: dict[str, str] = {}
    tools = chat_tools(given_tools, unsupported, namespaces)
    if tools:
        params["tools"] = tools
    choice = fields.get("tool_choice")
    if choice is not None:
        params["tool_choice"] = chat_tool_choice(choice)
    budget = fields.get("max_output_tokens")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise RequestInvalid("'max_output_tokens' must be a positive integer.")
        params["max_completion_tokens"] = budget
    text = _optional(fields, "text", dict, "an object") or {}
    response_format = chat_response_format(text.get("format"))
    if response_format is not None:
        params["response_format"] = response_format
    reasoning = _optional(fields, "reasoning", dict, "an object") or {}
    effort = reasoning.get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise RequestInvalid("'reasoning.effort' must be a string such as 'low' or 'high'.")
        params["reasoning_effort"] = effort
    echo = {
        "instructions": instructions,
        "max_output_tokens": budget,
        "metadata": metadata or {},
        "parallel_tool_calls": fields.get("parallel_tool_calls", True),
        "previous_response_id": previous,
        "reasoning": {"effort": effort, "summary": reasoning.get("summary")},
        "store": store is not False,
        "temperature": fields.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": choice if choice is not None else "auto",
        "tools": given_tools or [],
        "top_p": fields.get("top_p"),
        "truncation": fields.get("truncation") or "disabled",
        "user": fields.get("user"),
    }
    return Decoded(
        items=items,
        instructions=instructions,
        params=params,
        echo=echo,
        store=store is not False,
        previous=previous,
        stream=stream,
        unsupported=unsupported,
        namespaces=namespaces,
    )


def _optional(fields: Mapping[str, Any], name: str, kind: type, wanted: str) -> Any:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise RequestInvalid(f"'{name}' must be {wanted}.")
    return value


# Input items.


def input_items(given: Any) -> list[dict[str, Any]]:
    """The input as normalized items: a string is one user message; each item gets its type
    and an id, and a message's string content becomes one text part."""
    if isinstance(given, str):
        given = [{"role": "user", "content": given}]
    if given is None:
        return []
    if not isinstance(given, list):
        raise RequestInvalid("'input' must be a string or a list of input items.")
    return [_item(index, item) for index, item in enumerate(given)]


def _item(index: int, item: Any) -> dict[str, Any]:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise RequestInvalid(f"{where} must be an object (a message or another input item).")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise RequestInvalid(
                f"{where}.role must be 'user', 'assistant', 'system' or 'developer', "
                f"not {role!r:.50}."
            )
        content = item.get("content")
        part = "output_text" if role == "assistant" else "input_text"
        if isinstance(content, str):
            content = [{"type": part, "text": content}]
            if role == "assistant":
                content[0]["annotations"] = []
        elif not isinstance(content, list):
            raise RequestInvalid(f"{where}.content must be a string or a list of content parts.")
        normalized = {**item, "type": "message", "content": content}
        normalized.setdefault("id", item_id("msg"))
        if role == "assistant":
            normalized.setdefault("status", "completed")
        return normalized
    if kind == "function_call":
        for name in ("call_id", "name"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise RequestInvalid(f"{where} (function_call) needs its '{name}'.")
        arguments = item.get("arguments", "")
        if not isinstance(arguments, str):
            raise RequestInvalid(f"{where}.arguments must be the arguments' JSON, as text.")
        return {"id": item_id("fc"), "status": "completed", **item, "arguments": arguments}
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not item["call_id"]:
            raise RequestInvalid(f"{where} (function_call_output) needs the 'call_id' it answers.")
        output = item.get("output")
        if not isinstance(output, str | list):
            raise RequestInvalid(f"{where}.output must be a string or a list of content parts.")
        return {"id": item_id("fco"), **item}
    if kind == "reasoning":
        if not isinstance(item.get("summary", []), list):
            raise RequestInvalid(f"{where}.summary must be a list of summary_text parts.")
        signature = item.get("encrypted_content")
        if signature is not None and not isinstance(signature, str):
            raise RequestInvalid(
                f"{where}.encrypted_content must be the string a reasoning item came with."
            )
        return {"id": item_id("rs"), "summary": [], **item}
    if kind == "item_reference":
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise RequestInvalid(f"{where} (item_reference) needs the 'id' of the item.")
        return {"type": kind, "id": item["id"]}
    raise RequestInvalid(
        f"{where} is of type {kind!r:.50}; chatwire takes message, function_call, "
        "function_call_output, reasoning and item_reference items."
    )


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    # Signed reasoning waiting for the assistant message it belongs to.
    reasoning: dict[str, Any] | None = None
    for index, item in enumerate(items):
        kind = item["type"]
        if kind == "reasoning":
            reasoning = _signed_reasoning(item, reasoning)
        elif kind == "message":
            message: dict[str, Any] = {"role": item["role"], "content": _content(index, item)}
            if item["role"] == "assistant" and reasoning is not None:
                message.update(reasoning)
            reasoning = None
            messages.append(message)
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"] or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if reasoning is not None and not any(key in last for key in _REASONING):
                    last.update(reasoning)
            else:
                last = {"role": "assistant", "content": None, "tool_calls": [call]}
                last.update(reasoning or {})
                messages.append(last)
            reasoning = None
        elif kind == "function_call_output":
            reasoning = None
            output = item["output"]
            if not isinstance(output, str):
                output = _text(index, output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    if not messages:
        raise RequestInvalid("'input' is empty: send the user's message (a string or items).")
    return messages


_REASONING = ("reasoning_signature", "reasoning_redacted")


def _signed_reasoning(
    item: dict[str, Any], waiting: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A reasoning item added to the signed reasoning ``waiting`` for its assistant message:
    its ``reasoning_content`` and ``reasoning_signature``, or one more of its
    ``reasoning_redacted``; the reasoning as it was without a signature."""
    signature = item.get("encrypted_content")
    if not isinstance(signature, str) or not signature:
        return waiting
    found = dict(waiting or {})
    if signature.startswith(REDACTED):
        found["reasoning_redacted"] = [
            *found.get("reasoning_redacted", ()),
            signature.removeprefix(REDACTED),
        ]
        return found
    texts = [
        part["text"]
        for part in item.get("summary") or ()
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    found.update(reasoning_content="".join(texts), reasoning_signature=signature)
    return found


def _content(index: int, item: dict[str, Any]) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for number, part in enumerate(item["content"]):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise RequestInvalid(
                    f"input[{index}].content[{number}] (input_image) needs an image_url (a URL "
                    "or a data URL); file ids are not taken through chatwire."
                )
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        else:
            raise RequestInvalid(
                f"input[{index}].content[{number}] is of type {kind!r:.50}; chatwire takes "
                "input_text, output_text and input_image parts."
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _text(index: int, parts: list[Any]) -> str:
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
            texts.append(str(part.get("text", "")))
        else:
            raise RequestInvalid(
                f"input[{index}].output takes text parts only through chatwire (or a string)."
            )
    return "".join(texts)


# Parameters.


def chat_tools(
    given: Any, unsupported: list[str], namespaces: dict[str, str]
) -> list[dict[str, Any]]:
    """Function tools in the nested chat shape, a namespace's functions among them (each
    name's namespace kept in ``namespaces``); other kinds are named as unsupported."""
    if given is None:
        return []
    if not isinstance(given, list):
        raise RequestInvalid("'tools' must be a list of tools.")
    tools = []
    for index, tool in enumerate(given):
        if not isinstance(tool, dict):
            raise RequestInvalid(f"tools[{index}] must be an object.")
        kind = tool.get("type")
        if kind == "namespace" and isinstance(tool.get("name"), str):
            inner = tool.get("tools")
            for number, member in enumerate(inner if isinstance(inner, list) else ()):
                where = f"tools[{index}].tools[{number}]"
                if not isinstance(member, dict) or member.get("type") != "function":
                    unsupported.append(f"{where} (type {_kind(member)!r:.50})")
                    continue
                tools.append(_function(where, member))
                namespaces[member["name"]] = tool["name"]
        elif kind == "function":
            tools.append(_function(f"tools[{index}]", tool))
        else:
            unsupported.append(f"tools[{index}] (type {kind!r:.50})")
    return tools


def _kind(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else None


def _function(where: str, tool: dict[str, Any]) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise RequestInvalid(f"{where} (function) needs its 'name'.")
    function: dict[str, Any] = {"name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def chat_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    raise RequestInvalid(
        "tool_choice must be 'auto', 'none', 'required' or "
        '{"type": "function", "name": ...} through chatwire.'
    )


def chat_response_format(given: Any) -> dict[str, Any] | None:
    """``text.format`` as chat completions' ``response_format``."""
    if given is None:
        return None
    kind = given.get("type") if isinstance(given, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(given.get("schema"), dict):
        schema: dict[str, Any] = {
            "name": given.get("name") or "response",
            "schema": given["schema"],
        }
        for key in ("description", "strict"):
            if given.get(key) is not None:
                schema[key] = given[key]
        return {"type": "json_schema", "json_schema": schema}
    raise RequestInvalid(
        "text.format must be {'type': 'text'}, {'type': 'json_object'} or "
        "{'type': 'json_schema', 'name': ..., 'schema': {...}}."
    )
