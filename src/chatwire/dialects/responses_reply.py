"""A Responses API reply built from the canonical deltas: its output items, and, streamed, the
typed events that tell them, in OpenAI's order.

    response.created, response.in_progress
    per item: response.output_item.added
      message:  response.content_part.added, response.output_text.delta ...,
                response.output_text.done, response.content_part.done
      function_call: response.function_call_arguments.delta ...,
                response.function_call_arguments.done
      reasoning: response.reasoning_summary_part.added,
                response.reasoning_summary_text.delta ..., response.reasoning_summary_text.done,
                response.reasoning_summary_part.done
    response.output_item.done
    response.completed (or response.incomplete); after a failure: error, response.failed

Every event is ``event: <type>`` and ``data: {..., "type", "sequence_number"}``, numbered from
0. Text (``delta.content``), reasoning (``delta.reasoning_content``) and tool calls each open
an item of their own when the previous one was of another kind; a tool call of a new
``index`` opens a new one. A reasoning signature (``delta.reasoning_signature``, Anthropic's
thinking) is its reasoning item's ``encrypted_content``, which the client gives back (or the
stored response keeps) for the conversation's next turn; redacted reasoning
(``delta.reasoning_redacted``, Anthropic's ``redacted_thinking``) is a reasoning item of its
own with no summary, its ``encrypted_content`` the data marked as redacted (``REDACTED``).
A reply cut by its budget (finish reason ``length``) is ``incomplete`` with
``{"reason": "max_output_tokens"}``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from chatwire.api.openai_errors import openai_error
from chatwire.dialects.responses_request import REDACTED, item_id
from chatwire.errors import ChatwireError
from chatwire.gateway.call import new_call_id

_encode = msgspec.json.Encoder().encode
INCOMPLETE: Final = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Reply:
    """One reply's output, gathered; ``events`` only when it is streamed."""

    __slots__ = (
        "_call_index",
        "_events",
        "_item",
        "_kind",
        "_namespaces",
        "_pieces",
        "finish",
        "head",
        "output",
        "sequence",
    )

    def __init__(
        self, head: dict[str, Any], *, streamed: bool, namespaces: dict[str, str] | None = None
    ) -> None:
        self.head = head
        # A namespaced function's name -> its namespace (the request's namespace tools).
        self._namespaces = namespaces or {}
        self.output: list[dict[str, Any]] = []
        self.sequence = 0
        self.finish: str | None = None
        self._events: list[bytes] | None = [] if streamed else None
        self._item: dict[str, Any] = {}
        self._kind: str | None = None
        self._pieces: list[str] = []
        self._call_index: Any = None

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        events = self._events
        if events is None:
            return
        payload["type"] = kind
        payload["sequence_number"] = self.sequence
        self.sequence += 1
        events.append(b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n")

    def taken(self) -> list[bytes]:
        """The events made since the last call."""
        events = self._events or []
        self._events = [] if self._events is not None else None
        return events

    def start(self) -> None:
        response = {**self.head, "status": "in_progress", "output": [], "usage": None}
        self._emit("response.created", {"response": response})
        self._emit("response.in_progress", {"response": response})

    def feed(self, chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue  # one reply: the first choice's
                change = choice.get("delta")
                if isinstance(change, dict):
                    reasoning = change.get("reasoning_content")
                    if reasoning and isinstance(reasoning, str):
                        self._reasoning(reasoning)
                    signature = change.get("reasoning_signature")
                    if signature and isinstance(signature, str):
                        self._signed(signature)
                    redacted = change.get("reasoning_redacted")
                    if redacted and isinstance(redacted, str):
                        self._redacted(redacted)
                    text = change.get("content")
                    if text and isinstance(text, str):
                        self._text(text)
                    for piece in change.get("tool_calls") or ():
                        if isinstance(piece, dict):
                            self._call(piece)
                finish = choice.get("finish_reason")
                if finish:
                    self.finish = finish

    # Items.

    def _open(self, kind: str, item: dict[str, Any]) -> None:
        self._close()
        self._kind, self._item, self._pieces = kind, item, []
        self._emit(
            "response.output_item.added", {"output_index": len(self.output), "item": dict(item)}
        )

    def _text(self, text: str) -> None:
        if self._kind != "message":
            item = {
                "id": item_id("msg"),
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
            self._open("message", item)
            self._emit(
                "response.content_part.added",
                {**self._where(), "content_index": 0, "part": _text_part("")},
            )
        self._pieces.append(text)
        self._emit(
            "response.output_text.delta",
            {**self._where(), "content_index": 0, "delta": text, "logprobs": []},
        )

    def _reasoning(self, text: str) -> None:
        self._open_reasoning()
        self._pieces.append(text)
        self._emit(
            "response.reasoning_summary_text.delta",
            {**self._where(), "summary_index": 0, "delta": text},
        )

    def _open_reasoning(self) -> None:
        if self._kind != "reasoning":
            self._open("reasoning", {"id": item_id("rs"), "type": "reasoning", "summary": []})
            self._emit(
                "response.reasoning_summary_part.added",
                {**self._where(), "summary_index": 0, "part": _summary("")},
            )

    def _signed(self, signature: str) -> None:
        """The signature of the reasoning just told (it comes once that reasoning ends)."""
        self._open_reasoning()
        self._item["encrypted_content"] = signature

    def _redacted(self, data: str) -> None:
        """A redacted reasoning: an item of its own, whole, with nothing to tell."""
        self._close()
        item = {
            "id": item_id("rs"),
            "type": "reasoning",
            "summary": [],
            "encrypted_content": REDACTED + data,
        }
        where = {"output_index": len(self.output)}
        self._emit("response.output_item.added", {**where, "item": dict(item)})
        self._emit("response.output_item.done", {**where, "item": item})
        self.output.append(item)

    def _call(self, piece: dict[str, Any]) -> None:
        index = piece.get("index", 0)
        function = piece.get("function")
        if not isinstance(function, dict):
            function = {}
        if self._kind != "function_call" or index != self._call_index:
            call_id = piece.get("id")
            item = {
                "id": item_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
                "name": function.get("name") or "",
            }
            namespace = self._namespaces.get(item["name"])
            if namespace is not None:
                item["namespace"] = namespace
            self._open("function_call", item)
            self._call_index = index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._pieces.append(arguments)
            self._emit(
                "response.function_call_arguments.delta", {**self._where(), "delta": arguments}
            )

    def _where(self) -> dict[str, Any]:
        return {"item_id": self._item["id"], "output_index": len(self.output)}

    def _close(self, status: str = "completed") -> None:
        kind, item = self._kind, self._item
        if kind is None:
            return
        where = self._where()
        text = "".join(self._pieces)
        if kind == "message":
            part = _text_part(text)
            self._emit(
                "response.output_text.done",
                {**where, "content_index": 0, "text": text, "logprobs": []},
            )
            self._emit("response.content_part.done", {**where, "content_index": 0, "part": part})
            item["content"] = [part]
            item["status"] = status
        elif kind == "reasoning":
            part = _summary(text)
            self._emit(
                "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}
            )
            self._emit(
                "response.reasoning_summary_part.done",
                {**where, "summary_index": 0, "part": part},
            )
            item["summary"] = [part]
        else:
            item["arguments"] = text or "{}"
            item["status"] = status
            self._emit(
                "response.function_call_arguments.done",
                {**where, "name": item["name"], "arguments": item["arguments"]},
            )
        self._emit("response.output_item.done", {"output_index": len(self.output), "item": item})
        self.output.append(item)
        self._kind, self._item, self._pieces = None, {}, []

    # The end.

    def complete(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The finished response: completed, or incomplete by its finish reason (its last
        event comes with ``announce``, once it is stored)."""
        reason = INCOMPLETE.get(self.finish or "")
        self._close("incomplete" if reason else "completed")
        response = {
            **self.head,
            "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "output": self.output,
            "usage": responses_usage(usage),
        }
        return response

    def announce(self, response: dict[str, Any]) -> None:
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        self._emit(kind, {"response": response})

    def failed(self, error: ChatwireError, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The response as failed, its ``error`` and ``response.failed`` events made."""
        self._close("incomplete")
        body = openai_error(error)["error"]
        code = body["code"] or body["type"]
        response = {
            **self.head,
            "status": "failed",
            "error": {"code": code, "message": error.message},
            "output": self.output,
            "usage": responses_usage(usage),
        }
        self._emit("error", {"code": code, "message": error.message, "param": None})
        self._emit("response.failed", {"response": response})
        return response


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The canonical (chat-completions) usage under the Responses API's names; only what the
    provider reported."""
    if not usage:
        return None
    out: dict[str, Any] = {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if prompt is not None:
        out["input_tokens"] = prompt
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, dict):
        details = {
            key: prompt_details[key]
            for key in ("cached_tokens", "cache_write_tokens")
            if prompt_details.get(key) is not None
        }
        if details:
            out["input_tokens_details"] = details
    if completion is not None:
        out["output_tokens"] = completion
    completion_details = usage.get("completion_tokens_details")
    if (
        isinstance(completion_details, dict)
        and completion_details.get("reasoning_tokens") is not None
    ):
        reasoning = completion_details["reasoning_tokens"]
        out["output_tokens_details"] = {"reasoning_tokens": reasoning}
    total = usage.get("total_tokens")
    if total is None and isinstance(prompt, int) and isinstance(completion, int):
        total = prompt + completion
    if total is not None:
        out["total_tokens"] = total
    return out
