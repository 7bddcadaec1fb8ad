"""Anthropic's Messages request from the canonical call: the conversation (system, turns,
content blocks, signed thinking given back, tool use and results), sampling, thinking,
structured output and tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chatwire.errors import RequestInvalid
from chatwire.families.base import Image as ImagePiece
from chatwire.families.base import (
    call_arguments,
    clamp_temperature,
    content_parts,
    number,
    stop_sequences,
    text_of,
)

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.declaration import Provider


# reasoning_effort as extended thinking's budget, in tokens; "none" is no thinking.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING = 1024
_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
_ROLES = "system, developer, user, assistant or tool"


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
                said = _signedthinking_for(message) + said
            _append(turns, "assistant", said + uses)
        elif role == "tool":
            _append(turns, "user", [_tool_result(label, index, message)])
        else:
            raise RequestInvalid(
                f"messages[{index}] has the role {role!r}; {label} takes {_ROLES}."
            )
    return "\n\n".join(system), turns


def _signedthinking_for(message: dict[str, Any]) -> list[dict[str, Any]]:
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


def thinking_given_back(turns: list[dict[str, Any]]) -> bool:
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


def sampling(
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


def output_format(value: Any) -> dict[str, Any] | None:
    """A json_schema ``response_format`` as structured outputs' format, else None."""
    if not isinstance(value, dict) or value.get("type") != "json_schema":
        return None
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        return None
    schema = spec.get("schema")
    return {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else None


def thinking_for(effort: Any, max_tokens: int) -> dict[str, Any] | None:
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


def tooling(params: Mapping[str, Any]) -> dict[str, Any]:
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
