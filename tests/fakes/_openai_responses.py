"""The fake OpenAI's Responses API: ``POST /v1/responses``, as OpenAI documents it.

The request is checked as the chat route checks its own (the key, then the body: JSON, a
``model`` string, an ``input`` string or list, a known model), then answered with the same
reply the chat route would give (``"Hello! You said: <last user text>"``, cut to
``max_output_tokens`` pieces with status ``incomplete``; a function call of the first function
tool when the request has tools, ``tool_choice`` other than ``none`` and a user message last;
``"The tool said: <output>"`` after a ``function_call_output``).

Streamed, the events come in the documented order, each as ``event: <type>`` and ``data``
with ``type`` and ``sequence_number`` (from 0): ``response.created``,
``response.in_progress``, ``response.output_item.added``, then for text
``response.content_part.added``, one ``response.output_text.delta`` per piece,
``response.output_text.done``, ``response.content_part.done``, or for a call one
``response.function_call_arguments.delta`` per fragment and
``response.function_call_arguments.done``; ``response.output_item.done``; and
``response.completed`` (``response.incomplete`` when cut). Not streamed: the ``response``
object. Usage counts one input token per word of the input and one output token per piece.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes import _openai_wire as wire
from tests.fakes import _send
from tests.fakes._text import compact, count_tokens, message_text
from tests.fakes._tool_calls import argument_fragments

if TYPE_CHECKING:
    from tests.fakes.fake_openai import FakeOpenAI


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the fake's chat planning reads one: messages, nested tools."""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": _text(item.get("output"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": ""})
    tools = [
        {"type": "function", "function": tool}
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    view: dict[str, Any] = {"messages": messages, "tools": tools}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        view["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        view["tool_choice"] = choice
    return view


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return message_text(content)


class ResponseEvents:
    """The events of one reply, text or one function call, numbered as they are made."""

    def __init__(self, model: str, *, prompt: int, truncated: bool, call: Any) -> None:
        self.sequence = 0
        self.prompt = prompt
        self.pieces: list[str] = []
        self.truncated = truncated
        self.call = call
        self.item_id = f"fc_{secrets.token_hex(24)}" if call else f"msg_{secrets.token_hex(24)}"
        self.call_id = wire.tool_call_id()
        self.head = {
            "id": f"resp_{secrets.token_hex(24)}",
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "error": None,
            "incomplete_details": None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }

    def _event(self, kind: str, **payload: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return f"event: {kind}\ndata: {compact(data)}\n\n".encode()

    def _item(self, status: str) -> dict[str, Any]:
        text = "".join(self.pieces)
        if self.call is not None:
            return {
                "id": self.item_id,
                "type": "function_call",
                "status": status,
                "arguments": text if status != "in_progress" else "",
                "call_id": self.call_id,
                "name": self.call.name,
            }
        content = [_part(text)] if status != "in_progress" else []
        return {
            "id": self.item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def response(self, status: str) -> dict[str, Any]:
        done = status in ("completed", "incomplete")
        reason = {"reason": "max_output_tokens"} if status == "incomplete" else None
        usage = {
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(self.pieces),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt + len(self.pieces),
        }
        return {
            **self.head,
            "status": status,
            "incomplete_details": reason,
            "output": [self._item(status)] if done else [],
            "usage": usage if done else None,
        }

    def opening(self) -> bytes:
        where = {"item_id": self.item_id, "output_index": 0}
        events = [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
            self._event(
                "response.output_item.added", output_index=0, item=self._item("in_progress")
            ),
        ]
        if self.call is None:
            events.append(
                self._event("response.content_part.added", **where, content_index=0, part=_part(""))
            )
        return b"".join(events)

    def piece(self, text: str, *, last: bool) -> bytes:
        self.pieces.append(text)
        where = {"item_id": self.item_id, "output_index": 0}
        if self.call is not None:
            return self._event("response.function_call_arguments.delta", **where, delta=text)
        return self._event(
            "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
        )

    def closing(self) -> bytes:
        where = {"item_id": self.item_id, "output_index": 0}
        status = "incomplete" if self.truncated else "completed"
        text = "".join(self.pieces)
        if self.call is not None:
            events = [
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=self.call.name,
                    arguments=text,
                )
            ]
        else:
            events = [
                self._event(
                    "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
                ),
                self._event(
                    "response.content_part.done", **where, content_index=0, part=_part(text)
                ),
            ]
        events.append(
            self._event("response.output_item.done", output_index=0, item=self._item(status))
        )
        kind = "response.incomplete" if self.truncated else "response.completed"
        events.append(self._event(kind, response=self.response(status)))
        return b"".join(events)

    def error(self) -> bytes:
        return b""


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


async def responses(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``, on the fake OpenAI (its key, models and pace)."""
    body, problem = await fake._record(request)
    refusal = fake._auth_refusal(request)
    if refusal is not None:
        return refusal
    if problem is not None:
        return fake._error(400, wire.BAD_JSON)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return fake._error(400, "Missing required parameter: 'model'.", param="model")
    if not isinstance(body.get("input"), str | list):
        return fake._error(400, "Missing required parameter: 'input'.", param="input")
    model: str = body["model"]
    if model not in fake.models:
        return fake._error(404, wire.model_not_found(model), code="model_not_found")
    view = chat_view(body)
    limit = body.get("max_output_tokens")
    call = fake.planned(view)
    plan = fake._plan(model, view["messages"], None if call else limit)
    pieces = plan.pieces
    if call is not None:
        pieces = argument_fragments(compact(call.arguments))
    prompt = sum(count_tokens(m["content"]) for m in view["messages"])
    events = ResponseEvents(model, prompt=prompt, truncated=plan.truncated, call=call)
    if body.get("stream") is not True:
        for piece in pieces:
            events.piece(piece, last=False)
        status = "incomplete" if plan.truncated else "completed"
        return web.json_response(events.response(status), dumps=compact)
    headers = {"Cache-Control": "no-cache", "x-request-id": wire.request_id()}
    resp = await _send.prepare(request, headers, "text/event-stream", "utf-8")
    await _send.stream(request, resp, events, pieces, plan.pace)
    return resp
